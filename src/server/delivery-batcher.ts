import type { EventsRepo, IncomingEvent } from '../db/events.js';
import type { IntakeQueue } from '../queues/index.js';
import { withTimeout } from '../timeout.js';
import { AppError } from '../errors/catalog.js';

interface Pending {
  event: IncomingEvent;
  supported: boolean;
  /** With the delivery's inbox id. */
  resolve: (id: number) => void;
  reject: (e: unknown) => void;
}

export interface DeliveryBatcherOptions {
  events: EventsRepo;
  intake: IntakeQueue;
  /** Bounds how long queueing may wait on Redis before its deliveries are left to the sweeper. */
  queueTimeoutMs?: number;
  onError?: (stage: 'database' | 'queue', err: Error) => void;
  /** Recorded deliveries not queued here (Redis failed or fell behind): the sweeper admits them. */
  onUnqueued?: (deliveries: number) => void;
}

/** Most deliveries written by one statement. */
const MAX_BATCH = 500;
/**
 * Statements being written at once: deliveries arriving while one is
 * written wait for the next, which takes them all. bench:ingest measured 1
 * ahead of 2 and 3 (BENCHMARKS.md).
 */
const MAX_IN_FLIGHT = 1;
/** Most recorded deliveries waiting to be queued; beyond it they are left to the sweeper. */
const MAX_UNQUEUED = 50_000;
/** Most delivery ids in one intake job. */
const MAX_IDS_PER_JOB = 1000;
/**
 * How long queueing waits after a commit for later commits to join the same
 * intake job. Under a burst that is one Redis command per 20 ms instead of
 * one per statement (bench:ingest measured about +0.02 on its ratio, and
 * 8× fewer intake jobs); a quiet delivery reaches the workers 20 ms later.
 */
const QUEUE_LINGER_MS = 20;

/**
 * Group commit for the webhook's acceptance path. Deliveries that arrive
 * together form a batch, appended to the inbox (oura.webhook_inbox) by one
 * Postgres statement; every delivery is answered as soon as that statement
 * has committed, so an acknowledged delivery is durable. If Postgres fails,
 * every delivery of the batch gets a 503 and Oura retries it.
 *
 * Queueing follows the commit, off the response path: the delivery ids of
 * whatever batches committed meanwhile (and within QUEUE_LINGER_MS after)
 * go to Redis in one intake job (one command; a worker admits the
 * deliveries to webhook_events and queues a job per event), one job at a
 * time. If Redis fails or falls MAX_UNQUEUED deliveries behind, those stay
 * in the inbox and the sweeper admits them after SWEEP_GRACE_S, as it does
 * after a crash between the two steps.
 */
export function createDeliveryBatcher(opts: DeliveryBatcherOptions) {
  const queueTimeoutMs = opts.queueTimeoutMs ?? 3000;
  let waiting: Pending[] = [];
  let inFlight = 0;
  let scheduled = false;
  // Committed, not yet queued.
  let unqueued: number[] = [];
  let draining = false;
  let drained: Promise<void> = Promise.resolve();

  function schedule(): void {
    if (scheduled || waiting.length === 0 || inFlight >= MAX_IN_FLIGHT) return;
    scheduled = true;
    // Let the deliveries that arrived in this turn of the event loop join the batch.
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
  }

  async function flush(): Promise<void> {
    if (waiting.length === 0 || inFlight >= MAX_IN_FLIGHT) return;
    inFlight++;
    const batch = waiting.length <= MAX_BATCH ? waiting : waiting.slice(0, MAX_BATCH);
    waiting = batch === waiting ? [] : waiting.slice(MAX_BATCH);
    try {
      let ids: number[];
      try {
        ids = await opts.events.recordDeliveries(batch);
      } catch (err) {
        opts.onError?.('database', err as Error);
        const e = new AppError('database_unavailable', 'event store unavailable; retry later');
        for (const p of batch) p.reject(e);
        return;
      }
      batch.forEach((p, i) => p.resolve(ids[i]!));
      toQueue(ids);
    } finally {
      inFlight--;
      schedule();
    }
  }

  function toQueue(ids: number[]): void {
    let dropped = 0;
    for (const id of ids) {
      if (unqueued.length >= MAX_UNQUEUED) dropped++;
      else unqueued.push(id);
    }
    if (dropped > 0) opts.onUnqueued?.(dropped);
    if (!draining) {
      draining = true;
      drained = drainQueue();
    }
  }

  async function drainQueue(): Promise<void> {
    try {
      await new Promise((resolve) => setTimeout(resolve, QUEUE_LINGER_MS));
      while (unqueued.length > 0) {
        const deliveryIds = unqueued.slice(0, MAX_IDS_PER_JOB);
        unqueued = unqueued.slice(deliveryIds.length);
        try {
          await withTimeout(opts.intake.add('deliveries', { deliveryIds }), queueTimeoutMs, 'queueing');
        } catch (err) {
          opts.onError?.('queue', err as Error);
          opts.onUnqueued?.(deliveryIds.length);
        }
      }
    } finally {
      // Set in the same turn as the last check above, so no delivery is left behind.
      draining = false;
    }
  }

  return {
    /**
     * Records one delivery together with whatever arrives alongside it;
     * resolves once it is committed (its queueing follows).
     */
    submit(event: IncomingEvent, supported: boolean): Promise<number> {
      return new Promise((resolve, reject) => {
        waiting.push({ event, supported, resolve, reject });
        schedule();
      });
    },
    /**
     * Waits, at most `timeoutMs`, for the deliveries already committed to
     * be queued; returns how many are not (the sweeper admits them).
     */
    async drain(timeoutMs = queueTimeoutMs): Promise<number> {
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      await Promise.race([
        (async () => {
          while (draining) await drained;
        })(),
        deadline,
      ]);
      clearTimeout(timer);
      return unqueued.length;
    },
  };
}
