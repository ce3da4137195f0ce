import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { UsersRepo } from '../db/users.js';
import { OuraApiError } from '../oura/client.js';

/** Refusals that retrying cannot fix and that say something about the user's access: recorded on the user. */
const ACCESS_ERRORS = new Set([403, 426]);

export interface OuraErrorHooks {
  /** 403/426: the user's access is refused (recorded on the user before this runs). */
  onAccessDenied: (err: OuraApiError) => Promise<void>;
  /** Any other answer that retrying cannot change. */
  onPermanent: (err: OuraApiError) => Promise<void>;
}

/**
 * The one policy for a job that Oura failed, in the queue's own terms:
 * - 429 is not a failure: the job goes back, delayed by what Oura asked,
 *   without spending an attempt (DelayedError);
 * - 403 and 426 are recorded on the user (`access_error`) and end the job
 *   (UnrecoverableError), as does any other answer that is not retryable;
 * - everything else (5xx, timeouts, the network, a 401 after a refresh) is
 *   rethrown, for BullMQ's exponential backoff with jitter.
 * Never returns.
 */
export async function failJobOnOuraError(
  err: unknown,
  ctx: { job: Job; token: string | undefined; userId: string; users: Pick<UsersRepo, 'recordAccessError'> },
  hooks: OuraErrorHooks,
): Promise<never> {
  if (!(err instanceof OuraApiError)) throw err;
  if (err.status === 429) {
    await ctx.job.moveToDelayed(Date.now() + (err.retryAfterMs ?? 1000), ctx.token);
    throw new DelayedError();
  }
  if (ACCESS_ERRORS.has(err.status)) {
    await ctx.users.recordAccessError(ctx.userId, `${err.status} ${err.code}`);
    await hooks.onAccessDenied(err);
    throw new UnrecoverableError(err.message);
  }
  if (!err.retryable) {
    await hooks.onPermanent(err);
    throw new UnrecoverableError(err.message);
  }
  throw err;
}
