import type { EventsRepo, IncomingEvent, RecordedEvent } from '../db/events.js';
import type { IntakeQueue } from '../workers/queues.js';
import { withTimeout } from '../timeout.js';
import { AppError } from './errors.js';

interface Pending {
  event: IncomingEvent;
  supported: boolean;
  resolve: (r: RecordedEvent) => void;
  reject: (e: unknown) => void;
}

export interface DeliveryBatcherOptions {
  events: EventsRepo;
  intake: IntakeQueue;
  /** Most deliveries written by one statement. */
  maxBatch?: number;
  /**
   * Batches being written at once (default 2): while one is being queued in
   * Redis or waits on Postgres, the next is written. More only split the same
   * deliveries into smaller batches: bench:ingest measured 2 ahead of 3 and 4.
   */
  maxInFlight?: number;
  /** Bounds how long a batch may wait on Redis before its deliveries get 503. */
  queueTimeoutMs?: number;
  onError?: (stage: 'database' | 'queue', err: Error) => void;
}

/**
 * Group commit for the webhook's acceptance path. Deliveries that arrive
 * together form a batch; each batch is one Postgres statement and one Redis
 * command (one intake job carrying the batch's event ids, which a worker
 * expands into per-event jobs), with up to `maxInFlight` batches written at
 * once. Every delivery is answered only once its own event is recorded and
 * queued; if either store fails, every delivery of that batch gets the error
 * (503), and Oura retries them.
 */
export function createDeliveryBatcher(opts: DeliveryBatcherOptions) {
  const maxBatch = opts.maxBatch ?? 500;
  const maxInFlight = opts.maxInFlight ?? 2;
  const queueTimeoutMs = opts.queueTimeoutMs ?? 3000;
  let waiting: Pending[] = [];
  let inFlight = 0;
  let scheduled = false;

  function schedule(): void {
    if (scheduled || waiting.length === 0 || inFlight >= maxInFlight) return;
    scheduled = true;
    // Let the deliveries that arrived in this turn of the event loop join the batch.
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
  }

  async function flush(): Promise<void> {
    if (waiting.length === 0 || inFlight >= maxInFlight) return;
    inFlight++;
    const batch = waiting.slice(0, maxBatch);
    waiting = waiting.slice(batch.length);
    try {
      let recorded: RecordedEvent[];
      try {
        recorded = await opts.events.recordDeliveries(batch.map((p) => ({ event: p.event, supported: p.supported })));
      } catch (err) {
        opts.onError?.('database', err as Error);
        const e = new AppError('database_unavailable', 'event store unavailable; retry later');
        for (const p of batch) p.reject(e);
        return;
      }
      try {
        const eventIds: number[] = [];
        const repeats = new Set<number>();
        for (const r of recorded) {
          if (r.status !== 'queued') continue;
          if (r.inserted) eventIds.push(r.id);
          // Repeats of recorded events (rare: Oura retrying): make sure a job will run.
          else repeats.add(r.id);
        }
        if (eventIds.length > 0 || repeats.size > 0) {
          await withTimeout(opts.intake.add('deliveries', { eventIds, repeats: [...repeats] }), queueTimeoutMs, 'queueing');
        }
      } catch (err) {
        // The events are recorded (the sweeper will queue them), but only what is
        // queued is acknowledged: Oura retries a 503.
        opts.onError?.('queue', err as Error);
        const e = new AppError('queue_unavailable', 'queue unavailable; retry later');
        for (const p of batch) p.reject(e);
        return;
      }
      batch.forEach((p, i) => p.resolve(recorded[i]!));
    } finally {
      inFlight--;
      schedule();
    }
  }

  return {
    /** Records and queues one delivery together with whatever arrives alongside it. */
    submit(event: IncomingEvent, supported: boolean): Promise<RecordedEvent> {
      return new Promise((resolve, reject) => {
        waiting.push({ event, supported, resolve, reject });
        schedule();
      });
    },
  };
}
export type DeliveryBatcher = ReturnType<typeof createDeliveryBatcher>;
