import { Queue } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import type { Logger } from 'pino';
import { z } from 'zod';
import { DAY_MS, utcMidnight } from '../dates.js';
import type { BackfillRepo } from '../db/backfill.js';
import {
  DOCUMENT_TYPES,
  TIME_SERIES,
  documentTypes,
  isDocumentType,
  type DocumentType,
  type TimeSeriesType,
} from '../oura/registry.js';

/**
 * A user's historical load (backfill), in the limiter's backfill lane, behind
 * webhook-driven fetches.
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
]);
export type BackfillJob = z.infer<typeof BackfillJob>;

/** The longest range Oura accepts for a time series request. */
export const SERIES_WINDOW_DAYS = 30;
/** Documents: one window for the whole range up to this size (pagination is Oura's). */
const DOCUMENT_WINDOW_DAYS = 366;

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

/** How a window's size is chosen: documents in one read (Oura pages them), time series by Oura's longest range. */
export function windowDays(kind: DataKind): number {
  return isDocumentType(kind) ? DOCUMENT_WINDOW_DAYS : SERIES_WINDOW_DAYS;
}

export function windowCount(kind: DataKind, start: number, end: number): number {
  if (isDocumentType(kind) && !documentTypes[kind].dateField) return 1;
  return Math.max(1, Math.ceil((end - start) / (windowDays(kind) * DAY_MS)));
}

export function createBackfillQueue(connection: RedisClient, prefix: string) {
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

export async function enqueueWindow(deps: BackfillProducer, userId: string, kind: DataKind, generation: number, n: number): Promise<void> {
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
export async function startBackfill(deps: BackfillProducer, userId: string, days: number): Promise<void> {
  const { start, end } = backfillRange(days);
  // Every type's progress is reset before any window runs: a type that finished
  // early must find the others running, not done from the backfill before
  // (user.backfill_completed is recorded once, when the last one finishes).
  for (const kind of DATA_KINDS) {
    await deps.backfill.start({
      userId,
      dataType: kind,
      rangeStart: new Date(start),
      rangeEnd: new Date(end),
      windowsTotal: windowCount(kind, start, end),
    });
  }
  for (const kind of DATA_KINDS) {
    const row = await deps.backfill.get(userId, kind);
    await enqueueWindow(deps, userId, kind, row!.started_at.getTime(), 0);
  }
  deps.log.info({ module: 'backfill', userId, days }, 'backfill started');
}

/** Re-queues the next window of every running backfill (after Redis lost its jobs, or a restart). */
export async function resumeBackfills(deps: BackfillProducer): Promise<number> {
  let n = 0;
  for (const row of await deps.backfill.all()) {
    if (row.status !== 'running') continue;
    await enqueueWindow(deps, row.user_id, row.data_type as DataKind, row.started_at.getTime(), row.windows_done);
    n++;
  }
  return n;
}

/** What queueing backfill work needs: the progress rows and the queue. */
export interface BackfillProducer {
  backfill: BackfillRepo;
  backfillQueue: BackfillQueue;
  log: Logger;
}
