import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

/** Queue of webhook-driven fetches. */
export const EVENTS_QUEUE = 'oura-events';

/** Jobs carry ids only: never tokens, never health data. */
export const EventJob = z.object({ eventId: z.number().int().positive() });
export type EventJob = z.infer<typeof EventJob>;

/**
 * Queue between the webhook endpoint and the events queue. The ids of the
 * deliveries the endpoint committed to the inbox since its last job, and in
 * the 20 ms after (one batch or several, at most 1000), become one job here,
 * so a burst costs one small job per 20 ms instead of one per event; a
 * worker admits them to webhook_events and queues the per-event jobs of
 * EVENTS_QUEUE.
 */
export const INTAKE_QUEUE = 'oura-intake';

const Id = z.number().int().positive();
/**
 * Ids only. `deliveryIds`: rows of oura.webhook_inbox. The older shape
 * (`eventIds`: newly recorded events; `repeats`: recorded events Oura
 * delivered again), queued by an api from before the inbox, is still run.
 */
export const IntakeJob = z.union([
  z.object({ deliveryIds: z.array(Id) }),
  z.object({ eventIds: z.array(Id), repeats: z.array(Id).default([]) }),
]);
export type IntakeJob = z.input<typeof IntakeJob>;

export function createIntakeQueue(connection: Redis, prefix: string) {
  return new Queue<IntakeJob>(INTAKE_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      // Admitting a batch only fails while Postgres or Redis does; retry for about
      // half an hour (a retry also queues what an earlier attempt admitted but could
      // not queue), after which the sweeper still admits and re-queues what is left.
      attempts: 12,
      backoff: { type: 'exponential', delay: 500, jitter: 0.5 },
      removeOnComplete: { count: 1000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
}
export type IntakeQueue = ReturnType<typeof createIntakeQueue>;

/** Adds the events' jobs; an event whose job exists already is left alone, so a retried batch queues nothing twice. */
export async function queueEvents(queue: EventQueue, eventIds: number[]): Promise<void> {
  if (eventIds.length === 0) return;
  await queue.addBulk(eventIds.map((id) => ({ name: 'fetch', data: { eventId: id }, opts: { jobId: eventJobId(id) } })));
}

export function eventJobId(eventId: number): string {
  return `evt-${eventId}`;
}

export function createEventQueue(connection: Redis, prefix: string, retry: { attempts: number; backoffMs: number } = { attempts: 8, backoffMs: 2000 }) {
  return new Queue<EventJob>(EVENTS_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: retry.attempts,
      backoff: { type: 'exponential', delay: retry.backoffMs, jitter: 0.5 },
      removeOnComplete: { age: 3600, count: 10_000 },
      // Failed jobs stay (dead letters) until replayed or aged out.
      removeOnFail: { age: 14 * 24 * 3600 },
    },
  });
}
export type EventQueue = ReturnType<typeof createEventQueue>;

/**
 * Makes sure each event has a job that will run: adds it when missing, runs a
 * failed one again, replaces a completed one. Jobs waiting or delayed are left
 * alone, and so are active ones unless `followActive` (for a repeated
 * delivery: the running job may be serving the event from a read older than
 * the change the repeat announces, so a follow-up job runs after it). Returns
 * how many were (re)queued.
 */
export async function requeueEvents(queue: EventQueue, eventIds: number[], opts: { followActive?: boolean } = {}): Promise<number> {
  let n = 0;
  for (const id of eventIds) {
    const jobId = eventJobId(id);
    const job = await queue.getJob(jobId);
    if (job) {
      const state = await job.getState();
      if (state === 'failed') {
        await job.retry('failed');
        n++;
        continue;
      }
      if (state === 'active' && opts.followActive) {
        await queue.add('fetch', { eventId: id }, { jobId: `${jobId}-again-${Date.now()}`, delay: 250 });
        n++;
        continue;
      }
      if (state !== 'completed') continue;
      await job.remove();
    }
    await queue.add('fetch', { eventId: id }, { jobId });
    n++;
  }
  return n;
}
