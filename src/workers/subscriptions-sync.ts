import { DAY_MS } from '../dates.js';
import { syncAppSubscriptions } from '../oura/subscriptions.js';
import type { MaintenanceTask } from './maintenance-task.js';

/**
 * Daily: one subscription per ingested (event_type, data_type), renewed well
 * before it expires. The first run comes one period after the schedule is
 * first registered (run `subscriptions sync` once after the first deploy).
 */
export const subscriptionsSyncTask: MaintenanceTask = {
  name: 'subscriptions-sync',
  everyMs: DAY_MS,
  firstRunAfterMs: DAY_MS,
  async run(deps, log) {
    const r = await syncAppSubscriptions(deps);
    const counts = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.length]));
    if (r.failed.length > 0) {
      log.warn({ ...counts, failures: r.failed }, 'subscription sync incomplete');
      throw new Error(`subscription sync: ${r.failed.length} pair(s) failed, first: ${r.failed[0]!.error}`);
    }
    log.info(counts, 'subscriptions in sync');
    return counts;
  },
};
