import type { WorkerOptions } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import type { Deps } from '../deps.js';

/** A repeatable housekeeping task (see maintenance.ts). */
export interface MaintenanceTask {
  /** Job name and scheduler id. */
  name: string;
  /** How often it runs, in milliseconds. */
  everyMs: number;
  /** Delay of the first run when the schedule is first registered (default: at once); restarts keep the schedule. */
  firstRunAfterMs?: number;
  run: (deps: Deps, log: Deps['log']) => Promise<unknown>;
}

/**
 * Options of a worker that fetches from Oura in the background: a job held by
 * a dead worker runs again after JOB_LOCK_MS, a few times at most.
 */
export function backgroundWorkerOptions(deps: Pick<Deps, 'prefix' | 'config'>, connection: RedisClient, concurrency: number): WorkerOptions {
  return {
    connection,
    prefix: deps.prefix,
    concurrency,
    lockDuration: deps.config.JOB_LOCK_MS,
    stalledInterval: Math.max(1000, Math.floor(deps.config.JOB_LOCK_MS / 2)),
    maxStalledCount: 5,
    autorun: false,
  };
}

/** Rows a retention task deletes per statement. */
export const RETENTION_BATCH = 10_000;
/** At most this many batches per run, so one run stays short; the next run goes on. */
const RETENTION_MAX_BATCHES = 50;

/** Runs `deleteBatch` (deleting at most RETENTION_BATCH rows) until a batch comes back short; returns the rows deleted. */
export async function deleteInBatches(deleteBatch: (batch: number) => Promise<number>): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < RETENTION_MAX_BATCHES; i++) {
    const n = await deleteBatch(RETENTION_BATCH);
    deleted += n;
    if (n < RETENTION_BATCH) break;
  }
  return deleted;
}
