import type { Deps } from '../deps.js';
import { observeWorker } from '../metrics.js';
import { startPartnerWebhooks } from '../outbound/sender.js';
import { REFRESH_KINDS, resumeBackfills } from '../queues/index.js';
import { createBackfillWorker } from './backfill.js';
import { createEventWorker } from './event-worker.js';
import { createIntakeWorker, intakeDeps } from './intake-worker.js';
import { createMaintenanceWorker, maintenanceTasks, scheduleMaintenance } from './maintenance.js';
import { createRefreshWorker } from './refresh.js';
import { startSweeper } from './sweeper.js';

/** Starts every worker of this process; returns a function that drains and stops them. */
export function startWorkers(deps: Deps) {
  const eventWorker = createEventWorker({
    ...deps,
    workerConnection: deps.workerConnection(),
    concurrency: deps.config.WORKER_CONCURRENCY,
    scarcePairsPerUser: deps.config.SCARCE_PAIRS_PER_USER,
    coalescing: {
      freshnessTargetMs: deps.config.FRESHNESS_TARGET_S * 1000,
      scarceBacklogMs: deps.config.SCARCE_BACKLOG_MS,
      quietMs: deps.config.COALESCE_QUIET_MS,
    },
    retryMs: deps.config.EVENT_RETRY_MS,
    lockDurationMs: deps.config.JOB_LOCK_MS,
  });
  const intakeWorker = createIntakeWorker({ ...intakeDeps(deps), prefix: deps.prefix }, deps.workerConnection());
  intakeWorker.on('error', (err) => deps.workerOutages.error(err));
  const tasks = maintenanceTasks(deps);
  const maintenanceWorker = createMaintenanceWorker(deps, tasks, deps.workerConnection());
  const backfillWorker = createBackfillWorker(deps, deps.workerConnection(), Math.max(1, Math.ceil(deps.config.WORKER_CONCURRENCY / 4)));
  const refreshWorkers = REFRESH_KINDS.map((kind) => createRefreshWorker(deps, kind, deps.workerConnection(), deps.config.REFRESH_CONCURRENCY));
  observeWorker(deps.metrics, intakeWorker, 'intake');
  observeWorker(deps.metrics, eventWorker, 'events');
  observeWorker(deps.metrics, maintenanceWorker, 'maintenance');
  observeWorker(deps.metrics, backfillWorker, 'backfill');
  REFRESH_KINDS.forEach((kind, i) => observeWorker(deps.metrics, refreshWorkers[i]!, kind));
  void intakeWorker.run();
  void eventWorker.run();
  void maintenanceWorker.run();
  void backfillWorker.run();
  for (const w of refreshWorkers) void w.run();
  void scheduleMaintenance(deps.maintenanceQueue, tasks).catch((err: Error) =>
    deps.log.error({ err }, 'could not schedule maintenance tasks'),
  );
  // The sweeper also re-registers the schedules, in case Redis lost them.
  const sweeper = startSweeper(deps, async () => {
    await scheduleMaintenance(deps.maintenanceQueue, tasks);
    await resumeBackfills(deps);
  });
  // Outbound webhooks, when configured: outside BullMQ, woken by the change feed.
  const partnerWebhooks = startPartnerWebhooks(deps);
  const workers = [intakeWorker, eventWorker, maintenanceWorker, backfillWorker, ...refreshWorkers];
  return {
    workers,
    /** Stops taking jobs and waits for those in flight. */
    async close(): Promise<void> {
      sweeper.stop();
      await Promise.all([...workers.map((w) => w.close()), partnerWebhooks?.close()]);
    },
  };
}
