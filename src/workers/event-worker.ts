import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import type { Logger } from 'pino';
import { scrubError } from '../logger.js';
import type { OutageLog } from '../outages.js';
import { withLock } from '../redis-lock.js';
import { failJobOnOuraError } from './oura-errors.js';
import { createPairGate } from './pair-gate.js';
import { processEvent, type ProcessEventDeps } from './process-event.js';
import { EVENTS_QUEUE, EventJob } from '../queues/index.js';

export interface EventWorkerDeps extends ProcessEventDeps {
  /** A connection for BullMQ's blocking commands (maxRetriesPerRequest: null). */
  workerConnection: RedisClient;
  /** A connection for the per-(user, type) locks. */
  redis: RedisClient;
  prefix: string;
  concurrency: number;
  workerOutages: OutageLog;
  /** Pairs of one user served at once while the budget is scarce (SCARCE_PAIRS_PER_USER). */
  scarcePairsPerUser: number;
  /** Adaptive coalescing (see below): FRESHNESS_TARGET_S, SCARCE_BACKLOG_MS, COALESCE_QUIET_MS. */
  coalescing: { freshnessTargetMs: number; scarceBacklogMs: number; quietMs: number };
  /** EVENT_RETRY_MS: how soon a job set aside looks again (see below). */
  retryMs: number;
  lockDurationMs?: number;
  log: Logger;
}

/**
 * Adaptive coalescing. With budget to spare, events are fetched at once. When
 * the budget is scarce (the limiter is booked further ahead than
 * SCARCE_BACKLOG_MS), a (user, type) pair is fetched only once it has been
 * quiet for COALESCE_QUIET_MS: Oura often sends updates a few seconds after a
 * create while it reprocesses, and one request then serves them all. How long
 * an event may be held grows with the pressure: as long as the oldest queued
 * event has waited (at least MIN_HOLD_MS), for holding a pair that long costs
 * little next to the queue's own delay, but never more than half of
 * FRESHNESS_TARGET_S, so that the queue has the other half. Held jobs look
 * again within a second; the pair gate then serves each user's longest
 * waiting pairs first.
 */
const MIN_HOLD_MS = 30_000;

/** The per-user bound on pairs in flight while the budget is not scarce: none in practice. */
const UNLIMITED_PAIRS = 1_000_000;

/**
 * Runs webhook events. Events of one (user, data type) never run at the same
 * time, so their fetches, deletes and writes cannot interleave; a job that
 * finds the pair busy waits a moment (its event is usually served by the
 * running one). A 429 puts the job back without spending an attempt;
 * permanent refusals are unrecoverable; everything else is retried with
 * exponential backoff and jitter, then left in the failed set (dead letters).
 */
export function createEventWorker(deps: EventWorkerDeps) {
  const log = deps.log.child({ module: 'event-worker' });

  const gate = createPairGate(deps.redis, { prefix: deps.prefix, leaseMs: deps.lockDurationMs ?? 30_000 });

  /** How long the oldest queued event has waited: read at most once a second per process. */
  let delay = { at: 0, ms: 0 };
  async function queueDelayMs(): Promise<number> {
    if (Date.now() - delay.at > 1000) {
      const oldest = await deps.events.oldestQueuedAt();
      delay = { at: Date.now(), ms: oldest ? Date.now() - oldest.getTime() : 0 };
    }
    return delay.ms;
  }

  async function run(job: Job<EventJob>, token?: string): Promise<string> {
    const input = EventJob.parse(job.data);
    const event = await deps.events.get(input.eventId);
    if (!event || event.status !== 'queued') return 'already_finished';
    if (event.recheck_at && event.recheck_at.getTime() > Date.now() + 50) {
      // Waiting for its one re-check (see processEvent).
      await job.moveToDelayed(event.recheck_at.getTime(), token);
      throw new DelayedError();
    }
    const age = Date.now() - event.received_at.getTime();
    const { freshnessTargetMs, scarceBacklogMs, quietMs } = deps.coalescing;
    const backlogMs = await deps.limiter.backlogMs();
    const scarce = backlogMs > scarceBacklogMs;
    const maxHoldMs = scarce ? Math.min(freshnessTargetMs / 2, Math.max(MIN_HOLD_MS, await queueDelayMs())) : 0;
    if (!event.recheck_at && age < maxHoldMs) {
      const newest = await deps.events.newestPending(event.user_id, event.data_type);
      const quietAt = Math.min((newest ?? event.received_at).getTime() + quietMs, event.received_at.getTime() + maxHoldMs);
      if (quietAt > Date.now() + 50) {
        // Look again within a second: once the budget is no longer scarce, the hold ends.
        await job.moveToDelayed(Math.min(quietAt, Date.now() + 5 * deps.retryMs), token);
        throw new DelayedError();
      }
    }
    const lockKey = `${deps.prefix}:lock:pair:${event.user_id}:${event.data_type}`;
    // Under a scarce budget a user's pairs are served a few at a time, the
    // longest waiting first, so each finishes quickly instead of all of them
    // waiting on the limiter together. Re-checks (background reads) take no slot.
    const perUser = scarce ? deps.scarcePairsPerUser : UNLIMITED_PAIRS;
    const serve = () => processEvent({ ...deps, log: log.child({ jobId: job.id }) }, event);
    try {
      const r = await withLock(
        deps.redis,
        lockKey,
        async () =>
          event.recheck_at
            ? { admitted: true as const, value: await serve() }
            : gate.run(event.user_id, event.data_type, event.received_at, perUser, serve),
        { ttlMs: deps.lockDurationMs ?? 30_000 },
      );
      if (r.acquired && r.value.admitted) {
        const outcome = r.value.value;
        // Only when this job's event waits for its re-check: when, is in Postgres.
        const after = outcome === 'recheck_pending' ? await deps.events.get(event.id) : null;
        if (after?.status === 'queued' && after.recheck_at) {
          // Oura answered 404 right after announcing the object: this job runs the re-check.
          await job.moveToDelayed(Math.max(after.recheck_at.getTime(), Date.now() + 50), token);
          throw new DelayedError();
        }
        return outcome;
      }
      if (r.acquired) {
        // Other pairs of this user go first: ask again shortly.
        await job.moveToDelayed(Date.now() + deps.retryMs + Math.floor(Math.random() * 1.5 * deps.retryMs), token);
        throw new DelayedError();
      }
    } catch (err) {
      await failJobOnOuraError(scrubError(err), { job, token, userId: event.user_id, users: deps.users }, {
        // The pair's other events would meet the same refusal.
        onAccessDenied: async (e) => {
          const pending = await deps.events.pendingFor(event.user_id, event.data_type, new Date());
          await deps.events.finish(pending.map((p) => p.id), 'failed', e.code);
        },
        onPermanent: async (e) => {
          await deps.events.finish([input.eventId], 'failed', e.code);
          await deps.users.markTrouble(event.user_id);
        },
      });
    }
    // The pair is busy: come back shortly; by then the running job has likely served this event.
    await job.moveToDelayed(Date.now() + 0.75 * deps.retryMs + Math.floor(Math.random() * 1.25 * deps.retryMs), token);
    throw new DelayedError();
  }

  const worker = new Worker<EventJob>(EVENTS_QUEUE, run, {
    connection: deps.workerConnection,
    prefix: deps.prefix,
    concurrency: deps.concurrency,
    lockDuration: deps.lockDurationMs ?? 30_000,
    stalledInterval: Math.max(1000, Math.floor((deps.lockDurationMs ?? 30_000) / 2)),
    maxStalledCount: 5,
    autorun: false,
  });
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    log.warn({ jobId: job.id, attempts: job.attemptsMade, final, err }, 'event job failed');
    if (final) {
      const input = EventJob.safeParse(job.data);
      if (input.success) void deps.events.finish([input.data.eventId], 'failed', err.message.slice(0, 200)).catch(() => {});
    }
  });
  // BullMQ reports its connections' errors here, every retry: logged once per outage.
  worker.on('error', (err) => deps.workerOutages.error(err));
  return worker;
}
