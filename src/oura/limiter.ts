import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateLimit } from '../config.js';

/**
 * The app-wide limiter: one atomic Redis script, on Redis's clock, shared by
 * every process of the app.
 *
 * Each tier (the application, and optionally each access token) keeps a log of
 * granted send times in a sorted set. A caller asks for a permit and the script
 * reserves the earliest send time t ≥ now such that
 *   - no rolling window of W (+ a safety margin) holds more than N sends,
 *   - sends are at least W/N apart (even spacing, so bursts never pile up),
 *   - no pause announced by Oura (a 429) is still running,
 * in every tier at once. If t is within `maxAheadMs` it is booked and the caller
 * sleeps until t; otherwise nothing is booked and the caller is told when to ask
 * again (so a long queue of waiters cannot book the whole future).
 */
const SCRIPT = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local max_ahead = tonumber(ARGV[1])
local member = ARGV[2]
local ntiers = tonumber(ARGV[3])
local t = now
for i = 0, ntiers - 1 do
  local log = KEYS[i * 2 + 1]
  local pause = KEYS[i * 2 + 2]
  local limit = tonumber(ARGV[4 + i * 3])
  local window = tonumber(ARGV[5 + i * 3])
  local spacing = tonumber(ARGV[6 + i * 3])
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  local p = tonumber(redis.call('GET', pause) or '0')
  if p > t then t = p end
  local last = redis.call('ZRANGE', log, -1, -1, 'WITHSCORES')
  if last[2] then
    local next_spaced = tonumber(last[2]) + spacing
    if next_spaced > t then t = next_spaced end
  end
  local count = redis.call('ZCARD', log)
  if count >= limit then
    local nth = redis.call('ZRANGE', log, count - limit, count - limit, 'WITHSCORES')
    local free_at = tonumber(nth[2]) + window
    if free_at > t then t = free_at end
  end
end
if t - now > max_ahead then
  return {0, t - now}
end
for i = 0, ntiers - 1 do
  local log = KEYS[i * 2 + 1]
  local window = tonumber(ARGV[5 + i * 3])
  redis.call('ZADD', log, t, member)
  redis.call('PEXPIRE', log, window + (t - now) + 1000)
end
return {1, t - now}
`;

const PAUSE_SCRIPT = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local until_ms = now + tonumber(ARGV[1])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > cur then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[1]) + 1000)
end
return until_ms
`;

export interface LimiterOptions {
  app: RateLimit;
  /** Per access token, when Oura's token-tier limit is known. */
  token?: RateLimit | null;
  /** Key prefix; a Redis Cluster hash tag keeps every key of the script in one slot. */
  prefix?: string;
  /**
   * Added to each window so that delays between the grant and the request's
   * arrival at Oura cannot make Oura's own rolling window see N + 1.
   */
  marginMs?: number;
  /** Longest reservation made; waiters further out poll again. */
  maxAheadMs?: number;
}

export interface Permit {
  /** Milliseconds waited for the permit. */
  waitedMs: number;
}

/** Default safety margin: 5% of the window, between 250 ms and 1 s. */
function defaultMargin(r: RateLimit): number {
  return Math.min(1000, Math.max(250, r.windowS * 50));
}

function tierArgs(r: RateLimit, marginMs: number | undefined): number[] {
  const window = r.windowS * 1000 + (marginMs ?? defaultMargin(r));
  return [r.limit, window, Math.floor(window / r.limit)];
}

export function tokenKey(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('hex').slice(0, 24);
}

export function createLimiter(redis: Redis, opts: LimiterOptions) {
  const prefix = `${opts.prefix ?? 'oura-ingest'}:{limiter}`;
  const marginMs = opts.marginMs;
  const maxAheadMs = opts.maxAheadMs ?? 2000;
  const appLog = `${prefix}:app:log`;
  const appPause = `${prefix}:app:pause`;

  async function tryAcquire(tokenId: string | null): Promise<{ granted: boolean; delayMs: number }> {
    const keys = [appLog, appPause];
    const args: (string | number)[] = [maxAheadMs, randomUUID(), 1, ...tierArgs(opts.app, marginMs)];
    if (tokenId) {
      keys.push(`${prefix}:token:${tokenId}:log`, `${prefix}:token:${tokenId}:pause`);
      // Without a known token limit the token tier still honours pauses Oura announces.
      const tl = opts.token ?? { limit: 1_000_000, windowS: 1 };
      args[2] = 2;
      args.push(...tierArgs(tl, opts.token ? marginMs : 0));
    }
    const [granted, delay] = (await redis.eval(SCRIPT, keys.length, ...keys, ...args)) as [number, number];
    return { granted: granted === 1, delayMs: Math.max(0, delay) };
  }

  return {
    /**
     * Waits for a permit to send one request to Oura. `accessToken` selects the
     * token tier; token endpoint calls pass null (application tier only).
     */
    async acquire(accessToken: string | null, signal?: AbortSignal): Promise<Permit> {
      const started = Date.now();
      const tokenId = accessToken ? tokenKey(accessToken) : null;
      for (;;) {
        signal?.throwIfAborted();
        const { granted, delayMs } = await tryAcquire(tokenId);
        if (granted) {
          if (delayMs > 0) await sleep(delayMs, signal);
          return { waitedMs: Date.now() - started };
        }
        // Not booked: come back a little before the slot could open, with jitter
        // so waiters from many processes do not all return at once.
        await sleep(Math.min(delayMs - maxAheadMs / 2, 5000) + Math.random() * 100, signal);
      }
    },
    /** Oura said stop (429): no permit is granted for this tier until `ms` from now. */
    async pause(tier: 'application' | 'token', ms: number, accessToken?: string | null): Promise<void> {
      const key = tier === 'application' || !accessToken ? appPause : `${prefix}:token:${tokenKey(accessToken)}:pause`;
      await redis.eval(PAUSE_SCRIPT, 1, key, Math.max(0, Math.ceil(ms)));
    },
  };
}
export type Limiter = ReturnType<typeof createLimiter>;

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
