import { dropExpiredPartitions, ensurePartitions } from '../db/partitions.js';
import type { MaintenanceTask } from './maintenance-task.js';

/**
 * Every hour: makes sure the time series have their monthly partitions up to
 * three months ahead, and, when TIMESERIES_RETENTION_DAYS is set, drops the
 * partitions whose whole month is older (src/db/partitions.ts).
 */
export const seriesPartitionsTask: MaintenanceTask = {
  name: 'series-partitions',
  everyMs: 3_600_000,
  run: async (deps, log) => {
    const created = await ensurePartitions(deps.pool);
    const retention = deps.config.TIMESERIES_RETENTION_DAYS;
    const dropped = retention ? await dropExpiredPartitions(deps.pool, retention) : [];
    if (created.length > 0) log.info({ created }, 'time-series partitions created');
    if (dropped.length > 0) log.info({ dropped, retentionDays: retention }, 'time-series partitions past retention dropped');
    return { created: created.length, dropped: dropped.length };
  },
};
