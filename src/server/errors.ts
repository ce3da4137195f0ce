/**
 * The one catalog of error codes the HTTP API answers with. Routes throw
 * AppError(code); the error handler in app.ts formats `{code, message, requestId}`.
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
  not_found: 404,
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
