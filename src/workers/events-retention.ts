import { DAY_MS } from '../dates.js';
import { deleteInBatches, type MaintenanceTask } from './maintenance-task.js';

/**
 * Every hour: deletes webhook events served or ignored more than
 * WEBHOOK_EVENTS_RETENTION_DAYS ago, in batches. The documents themselves are
 * in their tables; an event row only serves deduplication of Oura's retries
 * (which stop within hours) and the operator's view of recent deliveries.
 */
export const eventsRetentionTask: MaintenanceTask = {
  name: 'webhook-events-retention',
  everyMs: 3_600_000,
  firstRunAfterMs: 60_000,
  run: async (deps, log) => {
    const before = new Date(Date.now() - deps.config.WEBHOOK_EVENTS_RETENTION_DAYS * DAY_MS);
    const deleted = await deleteInBatches((batch) => deps.events.pruneFinished(before, batch));
    if (deleted > 0) log.info({ deleted, retentionDays: deps.config.WEBHOOK_EVENTS_RETENTION_DAYS }, 'old webhook events deleted');
    return { deleted };
  },
};
