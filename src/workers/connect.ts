import type { Deps } from '../deps.js';
import { startBackfill } from './backfill.js';
import { requeueEvents } from './queues.js';

/**
 * What follows a user connecting (or reconnecting): a fresh backfill starts,
 * and events parked while the user had to re-authorise go back in line.
 */
export async function onUserConnected(deps: Deps, userId: string): Promise<void> {
  // A connection (or reconnection) starts a fresh historical load.
  if (deps.config.BACKFILL_DAYS > 0) await startBackfill(deps, userId);
  const ids = await deps.events.unpark(userId);
  if (ids.length > 0) {
    await requeueEvents(deps.queue, ids);
    deps.log.info({ userId, events: ids.length }, 'parked events re-queued after reconnect');
  }
}
