import { Worker, type Job } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import { DAY_MS, isoDay, utcMidnight } from '../dates.js';
import type { Deps } from '../deps.js';
import { scrubError } from '../logger.js';
import { DOCUMENT_TYPES, TIME_SERIES, documentTypes, type DocumentType } from '../oura/registry.js';
import { UserUnavailableError } from '../oura/tokens.js';
import { REFRESH_QUEUES, RefreshJob, SERIES_WINDOW_DAYS, type RefreshKind } from '../queues/index.js';
import { backgroundWorkerOptions } from './maintenance-task.js';
import { failJobOnOuraError } from './oura-errors.js';

/**
 * Types whose documents rarely change after the day they describe: a new ring,
 * a rest-mode period, an occasional VO2 max estimate. Reconciliation re-reads
 * them only every RECONCILE_SLOW_EVERY-th run of a user (and on the first),
 * which saves 3 of 16 requests on the other runs.
 */
export const SLOW_TYPES: readonly DocumentType[] = ['ring_configuration', 'rest_mode_period', 'vo2_max'];

/**
 * Re-syncs a user's last RECONCILE_DAYS of every document type (the types
 * that rarely change only on every RECONCILE_SLOW_EVERY-th run), removing
 * what Oura no longer returns in that window.
 */
export async function reconcileUser(deps: Deps, userId: string): Promise<{ stored: number; removed: number; types: number }> {
  const user = await deps.users.get(userId);
  const slow = !user?.reconciled_at || (user.reconcile_runs + 1) % deps.config.RECONCILE_SLOW_EVERY === 0;
  const types = DOCUMENT_TYPES.filter((t) => slow || !SLOW_TYPES.includes(t));
  const today = utcMidnight(Date.now());
  const startDay = isoDay(today - deps.config.RECONCILE_DAYS * DAY_MS);
  const endDay = isoDay(today + 2 * DAY_MS);
  let stored = 0;
  let removed = 0;
  await deps.tokens.withToken(userId, async (token) => {
    for (const type of types) {
      const docs: Array<Record<string, unknown>> = [];
      for await (const page of deps.oura.listDocuments(token, type, { startDate: startDay, endDate: endDay }, { purpose: 'reconcile' })) {
        docs.push(...page);
      }
      stored += await deps.documents.upsert(type, userId, docs);
      const window = documentTypes[type].dateField ? { startDay, endDay } : null;
      removed += await deps.documents.removeMissing(type, userId, window, docs.map((d) => String(d.id)));
    }
  });
  await deps.users.markReconciled(userId);
  deps.usage.record('runs:reconcile');
  deps.log.info({ module: 'reconcile', userId, stored, removed, types: types.length }, 'user reconciled');
  return { stored, removed, types: types.length };
}

/**
 * Brings a user's heart rate and ring battery up to date: from the newest
 * stored sample (at most RECONCILE_DAYS back) to now, in Oura's longest
 * ranges. These series have no webhooks: this is how they stay fresh.
 */
export async function refreshSeries(deps: Deps, userId: string): Promise<{ samples: number }> {
  let samples = 0;
  let newest: Date | null = null;
  await deps.tokens.withToken(userId, async (token) => {
    for (const type of TIME_SERIES) {
      const latest = await deps.series.latest(type, userId);
      const end = Date.now() + 60_000;
      let from = Math.max(latest ? latest.getTime() : 0, end - deps.config.RECONCILE_DAYS * DAY_MS);
      while (from < end) {
        const to = Math.min(end, from + SERIES_WINDOW_DAYS * DAY_MS);
        for await (const page of deps.oura.listTimeSeries(
          token,
          type,
          { startDateTime: new Date(from).toISOString(), endDateTime: new Date(to).toISOString() },
          { purpose: 'timeseries' },
        )) {
          samples += await deps.series.upsert(type, userId, page);
        }
        from = to;
      }
      const now = await deps.series.latest(type, userId);
      if (now && (!newest || now > newest)) newest = now;
    }
  });
  await deps.users.markSeriesRefreshed(userId, newest);
  deps.usage.record('runs:timeseries');
  deps.log.debug({ module: 'timeseries', userId, samples }, 'time series refreshed');
  return { samples };
}

/** Runs one kind of refresh (see src/queues/refresh.ts) with its own workers. */
export function createRefreshWorker(deps: Deps, kind: RefreshKind, connection: RedisClient, concurrency: number) {
  const log = deps.log.child({ module: `${kind}-worker` });
  const worker = new Worker<RefreshJob>(
    REFRESH_QUEUES[kind],
    async (job: Job<RefreshJob>, token?: string) => {
      const input = RefreshJob.safeParse(job.data);
      if (!input.success) return 'unknown job shape';
      const { userId } = input.data;
      try {
        if (kind === 'reconcile') {
          const r = await reconcileUser(deps, userId);
          return `reconciled ${r.types} types: ${r.stored} stored, ${r.removed} removed`;
        }
        const r = await refreshSeries(deps, userId);
        return `${r.samples} samples`;
      } catch (err) {
        if (err instanceof UserUnavailableError) return `user ${err.status}`;
        // A refusal retrying cannot fix still counts as this run, so that the
        // user goes to the back of the line instead of being picked every tick.
        const settle = async () => {
          if (kind === 'reconcile') await deps.users.markReconciled(userId);
          else await deps.users.markSeriesRefreshed(userId, null);
        };
        return failJobOnOuraError(scrubError(err), { job, token, userId, users: deps.users }, { onAccessDenied: settle, onPermanent: settle });
      }
    },
    backgroundWorkerOptions(deps, connection, concurrency),
  );
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, attempts: job?.attemptsMade, err }, `${kind} job failed`));
  worker.on('error', (err) => deps.workerOutages.error(err));
  return worker;
}
