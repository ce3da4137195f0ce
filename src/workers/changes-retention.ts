import { DAY_MS } from '../dates.js';
import { pruneChanges } from '../db/changes.js';
import type { MaintenanceTask } from './maintenance-task.js';

const BATCH = 10_000;
/** At most this many batches of each kind per run, so one run stays short; the next run goes on. */
const MAX_BATCHES = 50;

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
    const prune = async (one: () => Promise<number>) => {
      let deleted = 0;
      for (let i = 0; i < MAX_BATCHES; i++) {
        const n = await one();
        deleted += n;
        if (n < BATCH) break;
      }
      return deleted;
    };
    const changes = await prune(() => pruneChanges(deps.db, before, BATCH));
    const messages = await prune(() => deps.partnerWebhooks.pruneFinished(before, BATCH));
    if (changes + messages > 0) log.info({ changes, messages, retentionDays: days }, 'old changes and outbound webhook messages deleted');
    return { changes, messages };
  },
};
