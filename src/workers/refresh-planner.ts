import type { Deps } from '../deps.js';
import { REFRESH_KINDS, queueRefreshes, type RefreshKind } from '../queues/index.js';
import type { MaintenanceTask } from './maintenance-task.js';

/** Jobs each refresh queue is kept topped up to: enough for the workers until the next tick. */
const QUEUED_PER_KIND = 50;

/** The planner's settings for one kind of refresh. */
export function refreshPolicy(config: Deps['config'], kind: RefreshKind): { targetS: number; minIntervalS: number } {
  return kind === 'reconcile'
    ? { targetS: config.RECONCILE_INTERVAL_S, minIntervalS: config.RECONCILE_MIN_INTERVAL_S }
    : { targetS: config.TIMESERIES_INTERVAL_S, minIntervalS: config.TIMESERIES_MIN_INTERVAL_S };
}

/**
 * The background cadence follows the spare budget, not a fixed interval.
 * Every PLANNER_INTERVAL_MS this task tops up the time-series and
 * reconciliation queues with the users most at risk (src/db/users.ts,
 * pickForRefresh); their workers run as fast as the limiter lets them, in
 * lanes below live work and backfill (src/oura/lanes.ts):
 *   - with budget to spare, any user not refreshed within the kind's minimum
 *     interval is a candidate, so the cadence rises toward that minimum;
 *   - while the budget is scarce (the limiter booked ahead, or live events
 *     queued for more than a tenth of FRESHNESS_TARGET_S), only users past
 *     half their target interval are, and the lane's floor guarantees them a
 *     share of the budget, so the target holds as long as the floor covers it.
 * What cadence was reached is reported by GET /admin/budget. It also warns
 * when webhooks have gone silent while users are active.
 */
export function refreshPlannerTask(deps: Deps): MaintenanceTask {
  const everyMs = deps.config.PLANNER_INTERVAL_MS;
  return {
    name: 'refresh-planner',
    everyMs,
    firstRunAfterMs: Math.min(everyMs, 5000),
    run: async (d, log) => {
      // The budget is not spare while the limiter is booked ahead, nor while
      // live events wait in the queue longer than a tenth of the freshness
      // target (live work may be held or queued without asking the limiter).
      const oldest = await d.events.oldestQueuedAt();
      const scarce =
        (await d.limiter.backlogMs()) > d.config.SCARCE_BACKLOG_MS ||
        (oldest !== null && Date.now() - oldest.getTime() > (d.config.FRESHNESS_TARGET_S * 1000) / 10);
      const queued: Record<string, number> = {};
      for (const kind of REFRESH_KINDS) {
        const waiting = await d.refreshQueues[kind].count();
        if (waiting >= QUEUED_PER_KIND / 2) {
          queued[kind] = 0;
          continue;
        }
        const { targetS, minIntervalS } = refreshPolicy(d.config, kind);
        const ids = await d.users.pickForRefresh(kind, {
          minAgeS: scarce ? Math.max(minIntervalS, targetS / 2) : minIntervalS,
          targetS,
          silenceS: d.config.SILENCE_ALERT_S,
          // Those already queued or running come first in the ranking and are skipped by their job ids.
          limit: QUEUED_PER_KIND + d.config.REFRESH_CONCURRENCY,
        });
        await queueRefreshes(d.refreshQueues, kind, ids);
        queued[kind] = ids.length;
      }
      const { active, lastWebhookAt } = await d.users.webhookActivity();
      const silentS = lastWebhookAt ? (Date.now() - lastWebhookAt.getTime()) / 1000 : null;
      if (active > 0 && silentS !== null && silentS > d.config.SILENCE_ALERT_S) {
        log.warn({ activeUsers: active, silentS: Math.round(silentS) }, 'no webhook received for longer than SILENCE_ALERT_S while users are active');
      }
      return { scarce, ...queued };
    },
  };
}
