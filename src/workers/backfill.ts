import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { createDocumentsRepo } from '../db/documents.js';
import { createSeriesRepo } from '../db/series.js';
import type { Deps } from '../deps.js';
import { OuraApiError } from '../oura/client.js';
import {
  DOCUMENT_TYPES,
  TIME_SERIES,
  documentTypes,
  isDocumentType,
  type DocumentType,
  type TimeSeriesType,
} from '../oura/registry.js';
import { UserUnavailableError } from '../oura/tokens.js';

/**
 * Background work: a user's historical load (backfill) and the periodic
 * re-sync of recent days (reconciliation). It runs at the limiter's
 * background priority, behind webhook-driven fetches.
 */
export const BACKFILL_QUEUE = 'oura-backfill';

export const DATA_KINDS = [...DOCUMENT_TYPES, ...TIME_SERIES] as const;
export type DataKind = DocumentType | TimeSeriesType;

export const BackfillJob = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('window'),
    userId: z.string().min(1),
    dataType: z.enum(DATA_KINDS),
    /** started_at of the progress row (ms): jobs of an earlier, restarted backfill are dropped. */
    generation: z.number().int(),
    /** Ordinal of the window within this data type; doubles as the job's priority (round-robin across users). */
    n: z.number().int().min(0),
  }),
  z.object({ kind: z.literal('reconcile'), userId: z.string().min(1) }),
]);
export type BackfillJob = z.infer<typeof BackfillJob>;

const DAY_MS = 86_400_000;
/** The longest range Oura accepts for a time series request. */
export const SERIES_WINDOW_DAYS = 30;
/** Documents: one window for the whole range up to this size (pagination is Oura's). */
const DOCUMENT_WINDOW_DAYS = 366;

export function utcMidnight(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}
export function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * The range a backfill of `days` covers: from the start of the UTC day `days`
 * ago to two days ahead. Oura reads a date-only `end_date` as the start of that
 * day, so an end of "tomorrow" or later is needed to include today's
 * documents in every timezone.
 */
export function backfillRange(days: number, now = Date.now()): { start: number; end: number } {
  const today = utcMidnight(now);
  return { start: today - days * DAY_MS, end: today + 2 * DAY_MS };
}

function windowDays(kind: DataKind): number {
  return isDocumentType(kind) ? DOCUMENT_WINDOW_DAYS : SERIES_WINDOW_DAYS;
}

export function windowCount(kind: DataKind, start: number, end: number): number {
  if (isDocumentType(kind) && !documentTypes[kind].dateField) return 1;
  return Math.max(1, Math.ceil((end - start) / (windowDays(kind) * DAY_MS)));
}

export function createBackfillQueue(connection: Redis, prefix: string) {
  return new Queue<BackfillJob>(BACKFILL_QUEUE, {
    connection,
    prefix,
    defaultJobOptions: {
      attempts: 8,
      backoff: { type: 'exponential', delay: 2000, jitter: 0.5 },
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 14 * 24 * 3600 },
    },
  });
}
export type BackfillQueue = ReturnType<typeof createBackfillQueue>;

function windowJobId(userId: string, kind: DataKind, generation: number, n: number): string {
  return `bf-${userId}-${kind}-${generation}-${n}`;
}

async function enqueueWindow(deps: Deps, userId: string, kind: DataKind, generation: number, n: number): Promise<void> {
  await deps.backfillQueue.add(
    'window',
    { kind: 'window', userId, dataType: kind, generation, n },
    // Window n of every user runs before window n+1 of any: round-robin across users.
    { jobId: windowJobId(userId, kind, generation, n), priority: Math.min(n + 1, 2_000_000) },
  );
}

/**
 * Starts a fresh backfill of the last `days` days for every data type and
 * both time series. Progress is persisted per (user, type).
 */
export async function startBackfill(deps: Deps, userId: string, days = deps.config.BACKFILL_DAYS): Promise<void> {
  const { start, end } = backfillRange(days);
  for (const kind of DATA_KINDS) {
    await deps.backfill.start({
      userId,
      dataType: kind,
      rangeStart: new Date(start),
      rangeEnd: new Date(end),
      windowsTotal: windowCount(kind, start, end),
    });
    const row = await deps.backfill.get(userId, kind);
    await enqueueWindow(deps, userId, kind, row!.started_at.getTime(), 0);
  }
  deps.log.info({ module: 'backfill', userId, days }, 'backfill started');
}

/** Re-queues the next window of every running backfill (after Redis lost its jobs, or a restart). */
export async function resumeBackfills(deps: Deps): Promise<number> {
  let n = 0;
  for (const row of await deps.backfill.all()) {
    if (row.status !== 'running') continue;
    await enqueueWindow(deps, row.user_id, row.data_type as DataKind, row.started_at.getTime(), row.windows_done);
    n++;
  }
  return n;
}

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
      ? deps.oura.listDocuments(token, kind, { startDate: isoDay(from), endDate: isoDay(to) }, { priority: 'background' })
      : deps.oura.listTimeSeries(
          token,
          kind,
          { startDateTime: new Date(from).toISOString(), endDateTime: new Date(to).toISOString() },
          { priority: 'background' },
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
      for await (const page of deps.oura.listDocuments(token, type, { startDate: startDay, endDate: endDay }, { priority: 'background' })) {
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
          { priority: 'background' },
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

export async function requestReconcile(deps: Deps, userId: string): Promise<void> {
  await deps.backfillQueue.add('reconcile', { kind: 'reconcile', userId }, { jobId: `rc-${userId}-${Date.now()}`, priority: 1 });
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
        if (err instanceof OuraApiError) {
          if (err.status === 429) {
            await job.moveToDelayed(Date.now() + (err.retryAfterMs ?? 1000), token);
            throw new DelayedError();
          }
          if (!err.retryable) {
            if (input.kind === 'window') await deps.backfill.fail(input.userId, input.dataType, `${err.status} ${err.code}`);
            if (err.status === 403 || err.status === 426) await deps.users.recordAccessError(input.userId, `${err.status} ${err.code}`);
            throw new UnrecoverableError(err.message);
          }
        }
        throw err;
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
    log.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: { message: err.message } }, 'backfill job failed');
    const input = job ? BackfillJob.safeParse(job.data) : null;
    if (input?.success && input.data.kind === 'window' && job && job.attemptsMade >= (job.opts.attempts ?? 1)) {
      void deps.backfill.fail(input.data.userId, input.data.dataType, err.message).catch(() => {});
    }
  });
  worker.on('error', (err) => log.error({ err: { message: err.message } }, 'backfill worker error'));
  return worker;
}
