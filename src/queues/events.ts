import { Queue } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import { z } from 'zod';

/** Queue of webhook-driven fetches. */
export const EVENTS_QUEUE = 'oura-events';

/** Jobs carry ids only: never tokens, never health data. */
export const EventJob = z.object({ eventId: z.number().int().positive() });
export type EventJob = z.infer<typeof EventJob>;

/**
 * The oldest waits are served first: an event's job carries a BullMQ priority
 * (lower runs first) that grows with the minute it was queued, so a job held
 * back (coalescing, a busy pair) and promoted again returns to its place by
 * age instead of going behind every newer job. Events queued again long after
 * they arrived (the sweeper, a reconnect, a replay) get STRAGGLER_PRIORITY,
 * ahead of all. Minutes count from 2026-01-01 modulo BullMQ's range (2^21),
 * which wraps every four years: for the minutes around a wrap, newer events
 * may go first.
 */
export const STRAGGLER_PRIORITY = 1;
const PRIORITY_BASE_MS = Date.UTC(2026, 0, 1);
const PRIORITY_RANGE = 2 ** 21 - 2;

export function eventPriority(at = Date.now()): number {
  const minute = Math.floor((at - PRIORITY_BASE_MS) / 60_000);
  return 2 + (((minute % PRIORITY_RANGE) + PRIORITY_RANGE) % PRIORITY_RANGE);
}

/** Adds the events' jobs; an event whose job exists already is left alone, so a retried batch queues nothing twice. */
export async function queueEvents(queue: EventQueue, eventIds: number[]): Promise<void> {
  if (eventIds.length === 0) return;
  const priority = eventPriority();
  await queue.addBulk(eventIds.map((id) => ({ name: 'fetch', data: { eventId: id }, opts: { jobId: eventJobId(id), priority } })));
}

export function eventJobId(eventId: number): string {
  return `evt-${eventId}`;
}

export function createEventQueue(connection: RedisClient, prefix: string, retry: { attempts: number; backoffMs: number } = { attempts: 8, backoffMs: 2000 }) {
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
 * the change the repeat announces, so a follow-up job runs after it).
 * `stragglers`: events that arrived long ago go ahead of the rest. Returns
 * how many were (re)queued.
 */
export async function requeueEvents(queue: EventQueue, eventIds: number[], opts: { followActive?: boolean; stragglers?: boolean } = {}): Promise<number> {
  let n = 0;
  const priority = opts.stragglers ? STRAGGLER_PRIORITY : eventPriority();
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
        await queue.add('fetch', { eventId: id }, { jobId: `${jobId}-again-${Date.now()}`, delay: 250, priority });
        n++;
        continue;
      }
      if (state !== 'completed') continue;
      await job.remove();
    }
    await queue.add('fetch', { eventId: id }, { jobId, priority });
    n++;
  }
  return n;
}
