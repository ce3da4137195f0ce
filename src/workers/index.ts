import type { Deps } from '../deps.js';
import { createEventWorker } from './event-worker.js';

/** Starts every worker of this process; returns a function that drains and stops them. */
export function startWorkers(deps: Deps) {
  const eventWorker = createEventWorker({
    ...deps,
    workerConnection: deps.workerConnection(),
    concurrency: deps.config.WORKER_CONCURRENCY,
  });
  void eventWorker.run();
  return {
    workers: [eventWorker],
    /** Stops taking jobs and waits for those in flight. */
    async close(): Promise<void> {
      await eventWorker.close();
    },
  };
}
