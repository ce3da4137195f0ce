import type { z } from 'zod';
import { OuraApiError } from '../oura/client.js';

/**
 * The one catalog of error codes the HTTP API answers with. Routes and the
 * operations of src/admin/ throw AppError(code); handleError (./http.ts)
 * formats `{code, message, request_id}`.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  invalid_body: 400,
  invalid_state: 400,
  oauth_denied: 400,
  unauthorized: 401,
  missing_signature: 401,
  invalid_signature: 401,
  invalid_timestamp: 401,
  stale_timestamp: 401,
  invalid_verification_token: 401,
  admin_readonly: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal: 500,
  oura_unavailable: 502,
  oura_refused: 502,
  database_unavailable: 503,
  queue_unavailable: 503,
  not_ready: 503,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  override name = 'AppError';
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.status = ERROR_STATUS[code];
  }
}

/** The first issue of a failed zod parse, as one line: `path: message` (`body` for the whole). */
export function formatZodError(err: z.ZodError, whole = 'body'): string {
  const issue = err.issues[0];
  if (!issue) return `${whole}: invalid`;
  return `${issue.path.join('.') || whole}: ${issue.message}`;
}

/** Parses `input` or throws AppError(`code`) naming the first problem. */
export function parseOr<T>(schema: z.ZodType<T>, input: unknown, code: 'invalid_body' | 'bad_request', whole = 'body'): T {
  const r = schema.safeParse(input);
  if (!r.success) throw new AppError(code, formatZodError(r.error, whole));
  return r.data;
}

/**
 * What an Oura failure means to our caller: a refusal (a 4xx other than 408
 * and 429: asking again will not help) is `refused` with `refusedMessage`;
 * anything else (5xx, timeouts, rate limits, the network) is `oura_unavailable`.
 */
export function fromOuraError(
  err: OuraApiError,
  opts: { refused: 'oura_refused' | 'oauth_denied'; refusedMessage: string; unavailableMessage: string },
): AppError {
  const refusal = err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;
  return refusal ? new AppError(opts.refused, opts.refusedMessage) : new AppError('oura_unavailable', opts.unavailableMessage);
}

/** Runs `fn`, turning an OuraApiError into the AppError fromOuraError gives; other errors pass through. */
export async function viaOura<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof OuraApiError)) throw err;
    throw fromOuraError(err, {
      refused: 'oura_refused',
      refusedMessage: `Oura refused to ${what} (${err.status} ${err.code})`,
      unavailableMessage: `Oura could not ${what} (${err.code}); try again later`,
    });
  }
}
