import type { Deps } from '../deps.js';
import { createEventWorker } from './event-worker.js';
import { createMaintenanceWorker, maintenanceTasks, scheduleMaintenance } from './maintenance.js';
import { startSweeper } from './sweeper.js';

/** Starts every worker of this process; returns a function that drains and stops them. */
export function startWorkers(deps: Deps) {
  const eventWorker = createEventWorker({
    ...deps,
    workerConnection: deps.workerConnection(),
    concurrency: deps.config.WORKER_CONCURRENCY,
    lockDurationMs: deps.config.JOB_LOCK_MS,
  });
  const tasks = maintenanceTasks(deps);
  const maintenanceWorker = createMaintenanceWorker(deps, tasks, deps.workerConnection());
  void eventWorker.run();
  void maintenanceWorker.run();
  void scheduleMaintenance(deps.maintenanceQueue, tasks).catch((err: Error) =>
    deps.log.error({ err: { message: err.message } }, 'could not schedule maintenance tasks'),
  );
  // The sweeper also re-registers the schedules, in case Redis lost them.
  const sweeper = startSweeper(deps, () => scheduleMaintenance(deps.maintenanceQueue, tasks));
  const workers = [eventWorker, maintenanceWorker];
  return {
    workers,
    /** Stops taking jobs and waits for those in flight. */
    async close(): Promise<void> {
      sweeper.stop();
      await Promise.all(workers.map((w) => w.close()));
    },
  };
}
