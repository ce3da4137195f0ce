import { Queue } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';

/** Queue of repeatable housekeeping jobs (reconciliation, subscription renewal, event retention). */
export const MAINTENANCE_QUEUE = 'oura-maintenance';

export function createMaintenanceQueue(connection: RedisClient, prefix: string) {
  return new Queue(MAINTENANCE_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: { removeOnComplete: { count: 100 }, removeOnFail: { count: 500 }, attempts: 1 },
  });
}
