import type { Deps } from '../deps.js';
import { requestReconcile } from '../queues/index.js';
import type { MaintenanceTask } from './maintenance-task.js';

/**
 * Every minute (or more often for short intervals): queue reconciliation for
 * the users now due (each active user once per RECONCILE_INTERVAL_S, spread
 * over the interval), and warn when webhooks have gone silent.
 */
export function reconcileTickTask(deps: Deps): MaintenanceTask {
  const everyMs = Math.max(1000, Math.min(60_000, (deps.config.RECONCILE_INTERVAL_S * 1000) / 10));
  return {
    name: 'reconcile-tick',
    everyMs,
    firstRunAfterMs: everyMs,
    run: async (d, log) => {
      const due = await d.users.claimDueForReconcile(d.config.RECONCILE_INTERVAL_S, 500);
      for (const userId of due) await requestReconcile(d, userId);
      const { active, lastWebhookAt } = await d.users.webhookActivity();
      const silentS = lastWebhookAt ? (Date.now() - lastWebhookAt.getTime()) / 1000 : null;
      if (active > 0 && silentS !== null && silentS > d.config.SILENCE_ALERT_S) {
        log.warn({ activeUsers: active, silentS: Math.round(silentS) }, 'no webhook received for longer than SILENCE_ALERT_S while users are active');
      }
      return { reconcile: due.length };
    },
  };
}
