import { Worker, type Queue } from 'bullmq';
import { MAINTENANCE_QUEUE } from '../queues/index.js';
import type { RedisClient } from '../redis-connect.js';
import type { Deps } from '../deps.js';
import type { MaintenanceTask } from './maintenance-task.js';

export type { MaintenanceTask } from './maintenance-task.js';
import { subscriptionsSyncTask } from './subscriptions-sync.js';
import { refreshPlannerTask } from './refresh-planner.js';
import { eventsRetentionTask } from './events-retention.js';
import { changesRetentionTask } from './changes-retention.js';
import { seriesPartitionsTask } from './series-partitions.js';



/**
 * Every repeatable task of the service. Each runs on one worker at a time
 * (BullMQ job schedulers create one job per period, whatever the number of
 * worker processes).
 */
export function maintenanceTasks(deps: Deps): MaintenanceTask[] {
  return [subscriptionsSyncTask, refreshPlannerTask(deps), eventsRetentionTask, changesRetentionTask, seriesPartitionsTask];
}

/**
 * Registers every task's schedule that Redis does not hold yet (first start,
 * or after Redis lost its data); an existing schedule with the same period is
 * kept as it is, so re-registering never pushes a first run further out.
 * Idempotent: safe from every process, at start-up and on every sweep.
 */
export async function scheduleMaintenance(queue: Queue, tasks: MaintenanceTask[]): Promise<void> {
  for (const t of tasks) {
    const existing = await queue.getJobScheduler(t.name);
    if (existing && existing.every === t.everyMs) continue;
    const startDate = t.firstRunAfterMs ? { startDate: Date.now() + t.firstRunAfterMs } : {};
    await queue.upsertJobScheduler(t.name, { every: t.everyMs, ...startDate }, { name: t.name, data: {} });
  }
}

export function createMaintenanceWorker(deps: Deps, tasks: MaintenanceTask[], connection: RedisClient) {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const log = deps.log.child({ module: 'maintenance' });
  const worker = new Worker(
    MAINTENANCE_QUEUE,
    async (job) => {
      const task = byName.get(job.name);
      if (!task) return 'unknown task';
      const started = Date.now();
      const result = await task.run(deps, log.child({ task: task.name, jobId: job.id }));
      log.debug({ task: task.name, ms: Date.now() - started }, 'maintenance task done');
      return result;
    },
    { connection, prefix: deps.prefix, concurrency: 2, autorun: false },
  );
  worker.on('failed', (job, err) => log.warn({ task: job?.name, err }, 'maintenance task failed'));
  worker.on('error', (err) => deps.workerOutages.error(err));
  return worker;
}
