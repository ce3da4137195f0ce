import { Worker, type Job } from 'bullmq';
import type { RedisClient } from '../redis-connect.js';
import { DAY_MS, isoDay } from '../dates.js';
import { createDocumentsRepo } from '../db/documents.js';
import { createSeriesRepo } from '../db/series.js';
import type { Deps } from '../deps.js';
import { scrubError } from '../logger.js';
import type { OuraApiError } from '../oura/client.js';
import { documentTypes, isDocumentType } from '../oura/registry.js';
import { UserUnavailableError } from '../oura/tokens.js';
import { backgroundWorkerOptions } from './maintenance-task.js';
import { failJobOnOuraError } from './oura-errors.js';
import {
  BACKFILL_QUEUE,
  BackfillJob,
  enqueueWindow,
  windowDays,
} from '../queues/index.js';

/**
 * A user's historical load (backfill), in the limiter's backfill lane, behind
 * webhook-driven fetches. The queue's contract (job shapes, how work is
 * queued) is src/queues/backfill.ts.
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
      ? deps.oura.listDocuments(token, kind, { startDate: isoDay(from), endDate: isoDay(to) }, { purpose: 'backfill' })
      : deps.oura.listTimeSeries(
          token,
          kind,
          { startDateTime: new Date(from).toISOString(), endDateTime: new Date(to).toISOString() },
          { purpose: 'backfill' },
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

export function createBackfillWorker(deps: Deps, connection: RedisClient, concurrency = 4) {
  const log = deps.log.child({ module: 'backfill-worker' });
  const worker = new Worker<BackfillJob>(
    BACKFILL_QUEUE,
    async (job: Job<BackfillJob>, token?: string) => {
      const parsed = BackfillJob.safeParse(job.data);
      // A job of another shape (a reconciliation queued here by an earlier version): its work is the planner's now.
      if (!parsed.success) return 'unknown job shape';
      const input = parsed.data;
      try {
        return await runWindow(deps, input);
      } catch (err) {
        if (err instanceof UserUnavailableError) return `user ${err.status}`;
        const failWindow = async (e: OuraApiError) => {
          await deps.backfill.fail(input.userId, input.dataType, `${e.status} ${e.code}`);
        };
        return failJobOnOuraError(scrubError(err), { job, token, userId: input.userId, users: deps.users }, { onAccessDenied: failWindow, onPermanent: failWindow });
      }
    },
    backgroundWorkerOptions(deps, connection, concurrency),
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
