import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { INTAKE_QUEUE, IntakeJob, queueEvents, requeueEvents, type EventQueue } from './queues.js';

export interface IntakeWorkerDeps {
  queue: EventQueue;
  prefix: string;
}

/**
 * Expands each batch the webhook endpoint accepted into one events-queue job
 * per event (job id `evt-<event id>`, so running a batch twice queues nothing
 * twice), and makes sure a repeated delivery runs again: a finished event's
 * job is replaced, and one being served gets a follow-up.
 */
export function createIntakeWorker(deps: IntakeWorkerDeps, connection: Redis, concurrency = 4) {
  return new Worker<IntakeJob>(
    INTAKE_QUEUE,
    async (job) => {
      const { eventIds, repeats } = IntakeJob.parse(job.data);
      await queueEvents(deps.queue, eventIds);
      const requeued = repeats.length > 0 ? await requeueEvents(deps.queue, repeats, { followActive: true }) : 0;
      return { queued: eventIds.length, requeued };
    },
    { connection, prefix: deps.prefix, concurrency, autorun: false },
  );
}
