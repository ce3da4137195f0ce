import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { OuraApiError } from '../oura/client.js';
import { processEvent, type ProcessEventDeps } from './process-event.js';
import { EVENTS_QUEUE, EventJob } from './queues.js';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export interface EventWorkerDeps extends ProcessEventDeps {
  /** A connection for BullMQ's blocking commands (maxRetriesPerRequest: null). */
  workerConnection: Redis;
  /** A connection for the per-object locks. */
  redis: Redis;
  prefix: string;
  concurrency: number;
  log: Logger;
}

/**
 * Runs webhook events. Events for one (user, type, object) never run at the
 * same time, so a fetch and a delete of one document cannot interleave.
 * A 429 puts the job back without spending an attempt; permanent refusals are
 * unrecoverable; everything else is retried with exponential backoff and
 * jitter, then left in the failed set (dead letters).
 */
export function createEventWorker(deps: EventWorkerDeps) {
  const log = deps.log.child({ module: 'event-worker' });

  async function run(job: Job<EventJob>, token?: string): Promise<string> {
    const input = EventJob.parse(job.data);
    const event = await deps.events.get(input.eventId);
    if (!event) return 'already_finished';
    const lockKey = `${deps.prefix}:lock:object:${event.user_id}:${event.data_type}:${event.object_id}`;
    const owner = randomUUID();
    if ((await deps.redis.set(lockKey, owner, 'PX', 120_000, 'NX')) !== 'OK') {
      await job.moveToDelayed(Date.now() + 100 + Math.random() * 200, token);
      throw new DelayedError();
    }
    try {
      return await processEvent({ ...deps, log: log.child({ jobId: job.id }) }, input);
    } catch (err) {
      if (err instanceof OuraApiError) {
        if (err.status === 429) {
          await job.moveToDelayed(Date.now() + (err.retryAfterMs ?? 1000), token);
          throw new DelayedError();
        }
        if (!err.retryable) {
          await deps.events.finish([input.eventId], 'failed', err.code);
          throw new UnrecoverableError(err.message);
        }
      }
      throw err;
    } finally {
      await deps.redis.eval(RELEASE, 1, lockKey, owner);
    }
  }

  const worker = new Worker<EventJob>(EVENTS_QUEUE, run, {
    connection: deps.workerConnection,
    prefix: deps.prefix,
    concurrency: deps.concurrency,
    autorun: false,
  });
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    log.warn({ jobId: job.id, attempts: job.attemptsMade, final, err: { message: err.message, name: err.name } }, 'event job failed');
    if (final) {
      const input = EventJob.safeParse(job.data);
      if (input.success) void deps.events.finish([input.data.eventId], 'failed', err.message.slice(0, 200)).catch(() => {});
    }
  });
  worker.on('error', (err) => log.error({ err: { message: err.message } }, 'worker error'));
  return worker;
}
