import { Worker } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import type { AdmittedDeliveries, EventsRepo } from '../db/events.js';
import type { Deps } from '../deps.js';
import { INTAKE_QUEUE, IntakeJob, queueEvents, requeueEvents, type EventQueue } from '../queues/index.js';

export interface IntakeDeps {
  events: Pick<EventsRepo, 'admitDeliveries' | 'queuedAmong'>;
  queue: EventQueue;
  /** Told what each admission did (the deliveries counter counts the duplicates). */
  onAdmitted?: (admitted: AdmittedDeliveries) => void;
}

/** The intake's dependencies in a process: duplicates found are counted as deliveries of outcome `duplicate`. */
export function intakeDeps(deps: Deps): IntakeDeps {
  return {
    events: deps.events,
    queue: deps.queue,
    onAdmitted: (a) => {
      if (a.duplicates > 0) deps.metrics.deliveries.inc({ outcome: 'duplicate' }, a.duplicates);
    },
  };
}

/**
 * Moves deliveries from the inbox to webhook_events, then queues one
 * events-queue job per new event (job id `evt-<event id>`, so queueing twice
 * queues nothing twice) and makes sure a repeated delivery runs again: a
 * finished event's job is replaced, and one being served gets a follow-up.
 *
 * Deliveries no longer in the inbox were moved before: by an earlier attempt
 * of this job that failed to queue (Redis), by another worker, or by the
 * sweeper. The new events among them still `queued` are queued here too, so
 * a retried job finishes what its first attempt began; a repeat merged into
 * another event then is left to the sweeper (after SWEEP_GRACE_S).
 */
export async function admitAndQueue(deps: IntakeDeps, deliveryIds: number[]) {
  const admitted = await deps.events.admitDeliveries(deliveryIds);
  deps.onAdmitted?.(admitted);
  let requeued = await queueRecorded(deps.queue, admitted.queued, admitted.repeats);
  if (admitted.deliveries < deliveryIds.length) {
    const fresh = new Set(admitted.queued);
    const earlier = (await deps.events.queuedAmong(deliveryIds)).filter((id) => !fresh.has(id));
    requeued += await requeueEvents(deps.queue, earlier);
  }
  return { deliveries: admitted.deliveries, queued: admitted.queued.length, requeued, ignored: admitted.ignored, duplicates: admitted.duplicates };
}

/** Queues new events' jobs, and makes sure repeated ones run again; returns how many repeats were (re)queued. */
async function queueRecorded(queue: EventQueue, eventIds: number[], repeats: number[]): Promise<number> {
  await queueEvents(queue, eventIds);
  return repeats.length > 0 ? requeueEvents(queue, repeats, { followActive: true }) : 0;
}

/** Runs the intake queue: each job is one admitAndQueue. */
export function createIntakeWorker(deps: IntakeDeps & { prefix: string }, connection: RedisClient, concurrency = 4) {
  return new Worker<IntakeJob>(
    INTAKE_QUEUE,
    async (job) => {
      const data = IntakeJob.parse(job.data);
      return admitAndQueue(deps, data.deliveryIds);
    },
    { connection, prefix: deps.prefix, concurrency, autorun: false },
  );
}
