import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

/** Queue of webhook-driven fetches. */
export const EVENTS_QUEUE = 'oura-events';

/** Jobs carry ids only: never tokens, never health data. */
export const EventJob = z.object({ eventId: z.number().int().positive() });
export type EventJob = z.infer<typeof EventJob>;

export function eventJobId(eventId: number): string {
  return `evt-${eventId}`;
}

export function createEventQueue(connection: Redis, prefix: string) {
  return new Queue<EventJob>(EVENTS_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: 8,
      backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
      removeOnComplete: { age: 3600, count: 10_000 },
      // Failed jobs stay (dead letters) until replayed or aged out.
      removeOnFail: { age: 14 * 24 * 3600 },
    },
  });
}
export type EventQueue = ReturnType<typeof createEventQueue>;
