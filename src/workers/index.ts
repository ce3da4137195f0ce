import type { Deps } from '../deps.js';
import { observeWorker } from '../metrics.js';
import { resumeBackfills } from '../queues/index.js';
import { createBackfillWorker } from './backfill.js';
import { createEventWorker } from './event-worker.js';
import { createIntakeWorker, intakeDeps } from './intake-worker.js';
import { createMaintenanceWorker, maintenanceTasks, scheduleMaintenance } from './maintenance.js';
import { startSweeper } from './sweeper.js';

/** Starts every worker of this process; returns a function that drains and stops them. */
export function startWorkers(deps: Deps) {
  const eventWorker = createEventWorker({
    ...deps,
    workerConnection: deps.workerConnection(),
    concurrency: deps.config.WORKER_CONCURRENCY,
    scarcePairsPerUser: deps.config.SCARCE_PAIRS_PER_USER,
    lockDurationMs: deps.config.JOB_LOCK_MS,
  });
  const intakeWorker = createIntakeWorker({ ...intakeDeps(deps), prefix: deps.prefix }, deps.workerConnection());
  intakeWorker.on('error', (err) => deps.workerOutages.error(err));
  const tasks = maintenanceTasks(deps);
  const maintenanceWorker = createMaintenanceWorker(deps, tasks, deps.workerConnection());
  const backfillWorker = createBackfillWorker(deps, deps.workerConnection(), Math.max(1, Math.ceil(deps.config.WORKER_CONCURRENCY / 4)));
  observeWorker(deps.metrics, intakeWorker, 'intake');
  observeWorker(deps.metrics, eventWorker, 'events');
  observeWorker(deps.metrics, maintenanceWorker, 'maintenance');
  observeWorker(deps.metrics, backfillWorker, 'backfill');
  void intakeWorker.run();
  void eventWorker.run();
  void maintenanceWorker.run();
  void backfillWorker.run();
  void scheduleMaintenance(deps.maintenanceQueue, tasks).catch((err: Error) =>
    deps.log.error({ err }, 'could not schedule maintenance tasks'),
  );
  // The sweeper also re-registers the schedules, in case Redis lost them.
  const sweeper = startSweeper(deps, async () => {
    await scheduleMaintenance(deps.maintenanceQueue, tasks);
    await resumeBackfills(deps);
  });
  const workers = [intakeWorker, eventWorker, maintenanceWorker, backfillWorker];
  return {
    workers,
    /** Stops taking jobs and waits for those in flight. */
    async close(): Promise<void> {
      sweeper.stop();
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
