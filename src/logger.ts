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
        err: pino.stdSerializers.err,
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
