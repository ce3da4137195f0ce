import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { DAY_MS, isoDay, utcMidnight } from '../dates.js';
import { createDocumentsRepo } from '../db/documents.js';
import { createSeriesRepo } from '../db/series.js';
import type { Deps } from '../deps.js';
import { scrubError } from '../logger.js';
import type { OuraApiError } from '../oura/client.js';
import { DOCUMENT_TYPES, TIME_SERIES, documentTypes, isDocumentType } from '../oura/registry.js';
import { UserUnavailableError } from '../oura/tokens.js';
import { failJobOnOuraError } from './oura-errors.js';
import {
  BACKFILL_QUEUE,
  BackfillJob,
  SERIES_WINDOW_DAYS,
  enqueueWindow,
  windowDays,
} from '../queues/index.js';

/**
 * Background work: a user's historical load (backfill) and the periodic
 * re-sync of recent days (reconciliation), at the limiter's background
 * priority, behind webhook-driven fetches. The queue's contract (job shapes,
 * how work is queued) is src/queues/backfill.ts.
 */

/** Loads one window of one data type and advances the persisted cursor in the same transaction. */
async function runWindow(deps: Deps, job: Extract<BackfillJob, { kind: 'window' }>): Promise<string> {
  const { userId, dataType: kind } = job;
  const row = await deps.backfill.get(userId, kind);
  if (!row || row.status !== 'running' || row.started_at.getTime() !== job.generation) return 'stale';
  if (row.windows_done !== job.n) {
    // This window is done already (a retry after the commit): continue with the next.
    if (row.windows_done > job.n) await enqueueWindow(deps, userId, kind, job.generation, row.windows_done);
    return 'already_done';
  }
  const from = row.cursor.getTime();
  const rangeEnd = row.range_end.getTime();
  const isDoc = isDocumentType(kind);
  const undated = isDoc && !documentTypes[kind].dateField;
  const to = undated ? rangeEnd : Math.min(rangeEnd, from + windowDays(kind) * DAY_MS);
  const items: Array<Record<string, unknown>> = [];
  let requests = 0;

  await deps.tokens.withToken(userId, async (token) => {
    items.length = 0;
    const pages = isDoc
      ? deps.oura.listDocuments(token, kind, { startDate: isoDay(from), endDate: isoDay(to) }, { priority: 'background', purpose: 'backfill' })
      : deps.oura.listTimeSeries(
          token,
          kind,
          { startDateTime: new Date(from).toISOString(), endDateTime: new Date(to).toISOString() },
          { priority: 'background', purpose: 'backfill' },
        );
    for await (const page of pages) {
      requests++;
      items.push(...page);
    }
  });

  const done = to >= rangeEnd;
  const advanced = await deps.backfill.completeWindow(userId, kind, row.cursor, { cursor: new Date(to), items: items.length, requests, done }, async (tx) => {
    if (isDoc) await createDocumentsRepo(tx).upsert(kind, userId, items);
    else await createSeriesRepo(tx).upsert(kind, userId, items);
  });
  if (!advanced) return 'stale';
  deps.log.info(
    { module: 'backfill', userId, dataType: kind, window: `${job.n + 1}/${row.windows_total}`, items: items.length, requests },
    done ? 'backfill of data type finished' : 'backfill window stored',
  );
  if (!done) await enqueueWindow(deps, userId, kind, job.generation, job.n + 1);
  return 'stored';
}

/**
 * Re-syncs a user's last RECONCILE_DAYS of every document type (removing what
 * Oura no longer returns in that window) and brings both time series up to
 * date from the newest stored sample.
 */
export async function reconcileUser(deps: Deps, userId: string): Promise<{ stored: number; removed: number; samples: number }> {
  const today = utcMidnight(Date.now());
  const startDay = isoDay(today - deps.config.RECONCILE_DAYS * DAY_MS);
  const endDay = isoDay(today + 2 * DAY_MS);
  let stored = 0;
  let removed = 0;
  let samples = 0;
  await deps.tokens.withToken(userId, async (token) => {
    for (const type of DOCUMENT_TYPES) {
      const docs: Array<Record<string, unknown>> = [];
      for await (const page of deps.oura.listDocuments(token, type, { startDate: startDay, endDate: endDay }, { priority: 'background', purpose: 'reconcile' })) {
        docs.push(...page);
      }
      stored += await deps.documents.upsert(type, userId, docs);
      const window = documentTypes[type].dateField ? { startDay, endDay } : null;
      removed += await deps.documents.removeMissing(type, userId, window, docs.map((d) => String(d.id)));
    }
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
          { priority: 'background', purpose: 'timeseries' },
        )) {
          samples += await deps.series.upsert(type, userId, page);
        }
        from = to;
      }
    }
  });
  await deps.users.touchFetch(userId);
  deps.log.info({ module: 'reconcile', userId, stored, removed, samples }, 'user reconciled');
  return { stored, removed, samples };
}

export function createBackfillWorker(deps: Deps, connection: Redis, concurrency = 4) {
  const log = deps.log.child({ module: 'backfill-worker' });
  const worker = new Worker<BackfillJob>(
    BACKFILL_QUEUE,
    async (job: Job<BackfillJob>, token?: string) => {
      const input = BackfillJob.parse(job.data);
      try {
        if (input.kind === 'reconcile') {
          const r = await reconcileUser(deps, input.userId);
          return `reconciled ${r.stored} stored, ${r.removed} removed, ${r.samples} samples`;
        }
        return await runWindow(deps, input);
      } catch (err) {
        if (err instanceof UserUnavailableError) return `user ${err.status}`;
        const failWindow = async (e: OuraApiError) => {
          if (input.kind === 'window') await deps.backfill.fail(input.userId, input.dataType, `${e.status} ${e.code}`);
        };
        return failJobOnOuraError(scrubError(err), { job, token, userId: input.userId, users: deps.users }, { onAccessDenied: failWindow, onPermanent: failWindow });
      }
    },
    {
      connection,
      prefix: deps.prefix,
      concurrency,
      lockDuration: deps.config.JOB_LOCK_MS,
      stalledInterval: Math.max(1000, Math.floor(deps.config.JOB_LOCK_MS / 2)),
      maxStalledCount: 5,
      autorun: false,
    },
  );
  worker.on('failed', (job, err) => {
    log.warn({ jobId: job?.id, attempts: job?.attemptsMade, err }, 'backfill job failed');
    const input = job ? BackfillJob.safeParse(job.data) : null;
    if (input?.success && input.data.kind === 'window' && job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      void deps.backfill.fail(input.data.userId, input.data.dataType, err.message).catch(() => {});
    }
  });
  worker.on('error', (err) => deps.workerOutages.error(err));
  return worker;
}
