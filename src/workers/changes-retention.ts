import { DAY_MS } from '../dates.js';
import { pruneChanges } from '../db/changes.js';
import { deleteInBatches, type MaintenanceTask } from './maintenance-task.js';

/**
 * Every hour: deletes changes of oura.changes written more than
 * CHANGES_RETENTION_DAYS ago, and outbound webhook messages delivered or
 * dead-lettered that long ago, in batches. Pending messages stay, however
 * old. A partner reading the feed must read more often than that (README,
 * "For partners").
 */
export const changesRetentionTask: MaintenanceTask = {
  name: 'changes-retention',
  everyMs: 3_600_000,
  firstRunAfterMs: 90_000,
  run: async (deps, log) => {
    const days = deps.config.CHANGES_RETENTION_DAYS;
    const before = new Date(Date.now() - days * DAY_MS);
    const changes = await deleteInBatches((batch) => pruneChanges(deps.db, before, batch));
    const messages = await deleteInBatches((batch) => deps.partnerWebhooks.pruneFinished(before, batch));
    if (changes + messages > 0) log.info({ changes, messages, retentionDays: days }, 'old changes and outbound webhook messages deleted');
    return { changes, messages };
  },
};
