import { Queue } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import { z } from 'zod';

/**
 * Queue between the webhook endpoint and the events queue. The ids of the
 * deliveries the endpoint committed to the inbox since its last job, and in
 * the 20 ms after (one batch or several, at most 1000), become one job here,
 * so a burst costs one small job per 20 ms instead of one per event; a
 * worker admits them to webhook_events and queues the per-event jobs of
 * EVENTS_QUEUE.
 */
export const INTAKE_QUEUE = 'oura-intake';

/**
 * Ids only: rows of oura.webhook_inbox. (A job of the shape queued before the
 * inbox existed fails to parse; its events are recorded and queued in
 * Postgres already, so the sweeper re-queues them after SWEEP_GRACE_S.)
 */
export const IntakeJob = z.object({ deliveryIds: z.array(z.number().int().positive()) });
export type IntakeJob = z.infer<typeof IntakeJob>;

export function createIntakeQueue(connection: RedisClient, prefix: string) {
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
