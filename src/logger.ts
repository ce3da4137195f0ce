import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Paths that may hold a secret, a token or health data. pino replaces them
 * with "[redacted]" wherever they appear in a log line.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-oura-signature"]',
  'req.headers["x-client-secret"]',
  'req.headers["x-admin-token"]',
  'headers.authorization',
  '*.access_token',
  '*.refresh_token',
  '*.accessToken',
  '*.refreshToken',
  '*.client_secret',
  '*.clientSecret',
  '*.token',
  // An OAuth authorization code, where a query or form is logged whole (error codes stay readable).
  'query.code',
  '*.query.code',
  '*.form.code',
  '*.document',
  '*.doc',
  '*.personal_info',
  'access_token',
  'refresh_token',
  'document',
];

/**
 * JSON lines for machines; human-readable (pino-pretty) only when stdout is a
 * terminal and no destination is given. Child loggers add request, job, user
 * and data type ids; REDACT_PATHS keep secrets and health data out.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const pretty = !destination && process.stdout.isTTY;
  return pino(
    {
      level,
      base: { service: 'oura-ingest' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
      serializers: {
        err: serializeError,
        // Only the path: query strings can carry an OAuth code, a state or a verification token.
        req: (r: { method?: string; url?: string; id?: string }) => ({ id: r.id, method: r.method, url: pathOnly(r.url ?? '') }),
        res: (r: { statusCode?: number }) => ({ statusCode: r.statusCode }),
      },
    },
    destination,
  );
}

/** Drops the query string of a URL path. */
export function pathOnly(url: string): string {
  const i = url.indexOf('?');
  return i === -1 ? url : url.slice(0, i);
}

/**
 * A failed query's error (drizzle's DrizzleQueryError) carries the
 * statement's bound values — documents, personal info, token ciphertexts —
 * in its message (after "params:") and in `params`; pg-pool's errors carry
 * the client. Neither may reach a log, a job's failedReason or an error body.
 */
const UNSAFE_ERROR_FIELDS = ['params', 'query', 'client'];

export function scrubMessage(message: string): string {
  const i = message.indexOf('\nparams:');
  return i === -1 ? message : `${message.slice(0, i)}\nparams: [redacted]`;
}

/** pino's error serializer, without bound values or clients (see UNSAFE_ERROR_FIELDS). */
function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>;
  return scrubSerialized(out);
}

function scrubSerialized(out: Record<string, unknown>): Record<string, unknown> {
  for (const f of UNSAFE_ERROR_FIELDS) delete out[f];
  if (typeof out.message === 'string') out.message = scrubMessage(out.message);
  if (typeof out.stack === 'string') out.stack = scrubMessage(out.stack);
  if (out.cause && typeof out.cause === 'object') scrubSerialized(out.cause as Record<string, unknown>);
  return out;
}

/**
 * The same error without bound values, for what BullMQ stores (a job's
 * failedReason and stack): a failed query's message is cut at its params.
 * Other errors pass through unchanged.
 */
export function scrubError(err: unknown): unknown {
  if (!(err instanceof Error) || (!err.message.includes('\nparams:') && !('params' in err))) return err;
  const clean = new Error(scrubMessage(err.message));
  clean.name = err.name;
  clean.stack = scrubMessage(err.stack ?? clean.message);
  const code = (err as { code?: unknown; cause?: { code?: unknown } }).code ?? (err as { cause?: { code?: unknown } }).cause?.code;
  if (code !== undefined) Object.assign(clean, { code });
  return clean;
}
