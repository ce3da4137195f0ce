import type { Deps } from '../deps.js';
import { eventJobId } from './queues.js';

/**
 * What follows a user connecting (or reconnecting): events parked while the
 * user had to re-authorise go back in line.
 */
export async function onUserConnected(deps: Deps, userId: string): Promise<void> {
  const ids = await deps.events.unpark(userId);
  if (ids.length > 0) {
    await deps.queue.addBulk(ids.map((id) => ({ name: 'fetch', data: { eventId: id }, opts: { jobId: eventJobId(id) } })));
    deps.log.info({ userId, events: ids.length }, 'parked events re-queued after reconnect');
  }
}
