import type { Job } from 'bullmq';
import type { Deps } from '../deps.js';
import { AppError } from '../errors/catalog.js';
import { EventJob } from '../queues/index.js';

/** A dead letter: a job of the events queue that failed for good, with what its event was about. */
export interface FailedJob {
  job_id: string;
  event_id: number | null;
  failed_reason: string | null;
  attempts_made: number;
  created_at: string | null;
  processed_at: string | null;
  failed_at: string | null;
  /** From oura.webhook_events; null when the row is gone (e.g. the user was disconnected). */
  event: {
    event_type: string;
    data_type: string;
    user_id: string;
    object_id: string;
    status: string;
    outcome: string | null;
  } | null;
}

const iso = (ms: number | undefined | null): string | null => (ms ? new Date(ms).toISOString() : null);
const eventIdOf = (job: Job): number | null => {
  const parsed = EventJob.safeParse(job.data);
  return parsed.success ? parsed.data.eventId : null;
};

export async function listFailed(
  deps: Pick<Deps, 'queue' | 'admin'>,
  input: { limit?: number; offset?: number } = {},
): Promise<{ total: number; failed: FailedJob[] }> {
  const limit = Math.min(Math.max(Math.trunc(input.limit ?? 100), 1), 1000);
  const offset = Math.max(Math.trunc(input.offset ?? 0), 0);
  const [total, jobs] = await Promise.all([deps.queue.getFailedCount(), deps.queue.getFailed(offset, offset + limit - 1)]);
  const present = (jobs as Array<Job | undefined>).filter((j): j is Job => Boolean(j));
  const ids = present.map(eventIdOf).filter((id): id is number => id !== null);
  const events = new Map((await deps.admin.eventsByIds(ids)).map((e) => [e.id, e]));
  return {
    total,
    failed: present.map((job) => {
      const eventId = eventIdOf(job);
      const e = eventId === null ? undefined : events.get(eventId);
      return {
        job_id: String(job.id),
        event_id: eventId,
        failed_reason: job.failedReason ? job.failedReason.slice(0, 500) : null,
        attempts_made: job.attemptsMade,
        created_at: iso(job.timestamp),
        processed_at: iso(job.processedOn),
        failed_at: iso(job.finishedOn),
        event: e
          ? { event_type: e.event_type, data_type: e.data_type, user_id: e.user_id, object_id: e.object_id, status: e.status, outcome: e.outcome }
          : null,
      };
    }),
  };
}

/**
 * Re-queues dead letters: the given failed jobs (by job id), or all of them.
 * Their events go back to `queued` first, so the retried job processes them;
 * each job gets a fresh set of attempts. Unknown ids, or ids of jobs that are
 * not failed, are refused before anything changes.
 */
export async function replayFailed(
  deps: Pick<Deps, 'queue' | 'admin' | 'log'>,
  input: { ids?: string[]; onProgress?: (done: number, total: number) => void } = {},
): Promise<{ replayed: number }> {
  let jobs: Job[];
  if (input.ids) {
    const ids = [...new Set(input.ids)];
    const found = await Promise.all(ids.map(async (id) => {
      const job = (await deps.queue.getJob(id)) as Job | undefined;
      return job && (await job.isFailed()) ? job : null;
    }));
    const missing = ids.filter((_, i) => !found[i]);
    if (missing.length > 0) {
      throw new AppError('not_found', `no failed job ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` (and ${missing.length - 5} more)` : ''}`);
    }
    jobs = found as Job[];
  } else {
    jobs = ((await deps.queue.getFailed(0, -1)) as Array<Job | undefined>).filter((j): j is Job => Boolean(j));
  }

  const log = deps.log.child({ module: 'admin' });
  const eventIds = jobs.map(eventIdOf).filter((id): id is number => id !== null);
  await deps.admin.requeueEvents(eventIds);
  let replayed = 0;
  for (const [i, job] of jobs.entries()) {
    try {
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      replayed++;
    } catch (err) {
      // Replayed or removed meanwhile: leave its event as it was found.
      const eventId = eventIdOf(job);
      if (eventId !== null) await deps.admin.markFailed([eventId], 'replay_failed');
      log.warn({ jobId: job.id, err }, 'could not replay failed job');
    }
    input.onProgress?.(i + 1, jobs.length);
  }
  log.info({ replayed }, 'failed jobs replayed');
  return { replayed };
}
