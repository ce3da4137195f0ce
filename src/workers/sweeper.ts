import type { Deps } from '../deps.js';
import { withLock } from '../redis-lock.js';
import { admitAndQueue, intakeDeps } from './intake-worker.js';
import { requeueEvents } from '../queues/index.js';

/**
 * Admits deliveries still in the inbox, and re-queues recorded events still
 * not done, after SWEEP_GRACE_S: the safety net for a Redis that lost its
 * data (a restart without persistence, a FLUSHDB), a crash between
 * recording and queueing, or a job that failed while Postgres could not
 * record the failure. Admission moves each delivery once and queueing is
 * idempotent (the job id is the event id), so a sweep never duplicates work.
 */
export async function sweepOnce(deps: Deps): Promise<{ admitted: number; requeued: number }> {
  const before = new Date(Date.now() - deps.config.SWEEP_GRACE_S * 1000);
  const stranded = await deps.events.staleDeliveries(before);
  const admitted = stranded.length > 0 ? (await admitAndQueue(intakeDeps(deps), stranded)).deliveries : 0;
  if (admitted > 0) deps.log.warn({ module: 'sweeper', admitted }, 'webhook deliveries left in the inbox admitted');
  const ids = await deps.events.staleQueued(before);
  const requeued = await requeueEvents(deps.queue, ids, { stragglers: true });
  if (requeued > 0) deps.log.warn({ module: 'sweeper', requeued }, 'recorded events re-queued');
  return { admitted, requeued };
}

/**
 * Runs the sweep in every worker process on a timer; a Redis lock lets one
 * process sweep at a time. A timer, not a BullMQ repeatable job, so it keeps
 * running even after Redis lost the job schedulers.
 */
export function startSweeper(deps: Deps, onTick?: () => Promise<void>) {
  const everyMs = Math.max(1000, Math.min(30_000, (deps.config.SWEEP_GRACE_S * 1000) / 2));
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    withLock(deps.redis, `${deps.prefix}:lock:sweeper`, async () => {
      await sweepOnce(deps);
      await onTick?.();
    }, { ttlMs: everyMs })
      .catch((err: unknown) => deps.log.warn({ module: 'sweeper', err }, 'sweep failed'))
      .finally(() => {
        running = false;
      });
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
