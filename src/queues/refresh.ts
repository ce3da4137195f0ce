import { Queue } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import { z } from 'zod';

/**
 * Background refreshes of a user, one queue per kind so that each kind has
 * workers of its own: time series (heart rate and ring battery, which have no
 * webhooks) and reconciliation (a re-read of recent documents). The planner
 * (src/workers/refresh-planner.ts) fills them by risk; the admin API may add
 * a user's reconciliation at once.
 */
export const REFRESH_KINDS = ['timeseries', 'reconcile'] as const;
export type RefreshKind = (typeof REFRESH_KINDS)[number];
export const REFRESH_QUEUES: Record<RefreshKind, string> = { timeseries: 'oura-timeseries', reconcile: 'oura-reconcile' };

export const RefreshJob = z.object({ userId: z.string().min(1) });
export type RefreshJob = z.infer<typeof RefreshJob>;

export function createRefreshQueue(connection: RedisClient, prefix: string, kind: RefreshKind) {
  return new Queue<RefreshJob>(REFRESH_QUEUES[kind], {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: 3,
      backoff: { type: 'exponential', delay: 5000, jitter: 0.5 },
      // A user's job id is free again once the job ends, so the planner can queue them again.
      removeOnComplete: true,
      removeOnFail: true,
    },
  });
}
export type RefreshQueue = ReturnType<typeof createRefreshQueue>;
export type RefreshQueues = Record<RefreshKind, RefreshQueue>;

/** Queues the users' refreshes; a user whose refresh of that kind is queued already is left alone. */
export async function queueRefreshes(queues: RefreshQueues, kind: RefreshKind, userIds: string[]): Promise<void> {
  if (userIds.length === 0) return;
  await queues[kind].addBulk(userIds.map((userId) => ({ name: kind, data: { userId }, opts: { jobId: `${kind}-${userId}` } })));
}

/** Reconciles a user soon (admin request), unless a reconciliation of theirs is queued already. */
export async function requestReconcile(deps: { refreshQueues: RefreshQueues }, userId: string): Promise<void> {
  await queueRefreshes(deps.refreshQueues, 'reconcile', [userId]);
}
