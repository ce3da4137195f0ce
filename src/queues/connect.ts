import type { EventsRepo } from '../db/events.js';
import { startBackfill, type BackfillProducer } from './backfill.js';
import { requeueEvents, type EventQueue } from './events.js';

/**
 * What follows a user connecting (or reconnecting): a fresh backfill of
 * `backfillDays` starts (none when 0), and events parked while the user had
 * to re-authorise go back in line.
 */
export async function onUserConnected(
  deps: BackfillProducer & { events: Pick<EventsRepo, 'unpark'>; queue: EventQueue; config: { BACKFILL_DAYS: number } },
  userId: string,
): Promise<void> {
  if (deps.config.BACKFILL_DAYS > 0) await startBackfill(deps, userId, deps.config.BACKFILL_DAYS);
  const ids = await deps.events.unpark(userId);
  if (ids.length > 0) {
    await requeueEvents(deps.queue, ids, { stragglers: true });
    deps.log.info({ userId, events: ids.length }, 'parked events re-queued after reconnect');
  }
}
