import { createHmac } from 'node:crypto';

/**
 * Messages as the Standard Webhooks specification has them
 * (https://www.standardwebhooks.com): the body `{"type", "timestamp",
 * "data"}`, and the headers `webhook-id` (the same on every attempt and
 * replay, so receivers can deduplicate), `webhook-timestamp` (seconds, when
 * the attempt was made) and `webhook-signature` (`v1,` and the base64
 * HMAC-SHA256 of `<id>.<timestamp>.<body>`, keyed by the secret after
 * `whsec_`, base64-decoded).
 */

/** The signing key of a `whsec_…` secret. */
export function signingKey(secret: string): Buffer {
  return Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
}

/** The `webhook-signature` header's value for one attempt. */
export function signature(key: Buffer, id: string, timestampS: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampS}.${body}`).digest('base64')}`;
}

/** The body: what happened, when it happened (ISO 8601), and its data. */
export function messageBody(type: string, occurredAt: Date, data: Record<string, unknown>): string {
  return JSON.stringify({ type, timestamp: occurredAt.toISOString(), data });
}

/** The headers of one attempt, signed now. */
export function signedHeaders(key: Buffer, id: string, body: string, now = Date.now()): Record<string, string> {
  const timestamp = Math.floor(now / 1000);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature(key, id, timestamp, body),
  };
}

/**
 * How long to wait before the next attempt after `attempts` failed ones, or
 * null when that was the last: the schedule's delay, up to a tenth later
 * (jitter, so that retries of many messages spread out), or the partner's
 * Retry-After when that is longer (never past the schedule's longest delay).
 */
export function retryDelay(schedule: number[], attempts: number, retryAfterMs: number | null, random = Math.random): number | null {
  const delay = schedule[attempts - 1];
  if (delay === undefined) return null;
  const jittered = Math.round(delay * (1 + random() * 0.1));
  return retryAfterMs !== null && retryAfterMs > jittered ? Math.min(retryAfterMs, Math.max(...schedule)) : jittered;
}

/** A Retry-After header (seconds, or an HTTP date) in milliseconds; null when absent or unreadable. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (!header) return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}
