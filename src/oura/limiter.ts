import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateLimit } from '../config.js';
import { defineScripts } from '../redis-scripts.js';

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
local class = ARGV[4]
local reserve = tonumber(ARGV[5])
local waiters = KEYS[1]
local bglog = KEYS[2]
redis.call('ZREMRANGEBYSCORE', waiters, '-inf', now)
local t = now
local app_limit = 0
local app_window = 0
local windows = {}
local paused_until = 0
for i = 0, ntiers - 1 do
  local log = KEYS[3 + i * 3]
  local pause = KEYS[4 + i * 3]
  local override = KEYS[5 + i * 3]
  local limit = tonumber(ARGV[6 + i * 3])
  local window = tonumber(ARGV[7 + i * 3])
  local spacing = tonumber(ARGV[8 + i * 3])
  local ov = redis.call('GET', override)
  if ov then
    local l, w = string.match(ov, '(%d+):(%d+)')
    l = tonumber(l)
    w = tonumber(w)
    if l and w and l > 0 and l * window < limit * w then
      limit = l
      window = w
      spacing = math.floor(w / l)
    end
  end
  if i == 0 then
    app_limit = limit
    app_window = window
  end
  windows[i] = window
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  local p = tonumber(redis.call('GET', pause) or '0')
  if p > paused_until then paused_until = p end
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
-- A pause (Oura said 429) books nothing: the caller comes back when it ends,
-- so a paused token never holds application slots that others could use.
if paused_until > now then
  return {2, paused_until - now}
end
if class == 'background' then
  redis.call('ZREMRANGEBYSCORE', bglog, '-inf', now - app_window)
  local live_waiting = redis.call('ZCARD', waiters)
  local bg_used = redis.call('ZCARD', bglog)
  local guaranteed = math.max(1, math.floor(app_limit * reserve))
  if live_waiting > 0 and bg_used >= guaranteed then
    return {0, 250}
  end
  if t - now > max_ahead then
    return {0, t - now}
  end
  redis.call('ZADD', bglog, t, member)
  redis.call('PEXPIRE', bglog, app_window + (t - now) + 1000)
else
  if t - now > max_ahead then
    redis.call('ZADD', waiters, now + max_ahead + 2000, member)
    redis.call('PEXPIRE', waiters, max_ahead + 5000)
    return {0, t - now}
  end
  redis.call('ZREM', waiters, member)
end
for i = 0, ntiers - 1 do
  local log = KEYS[3 + i * 3]
  redis.call('ZADD', log, t, member)
  redis.call('PEXPIRE', log, windows[i] + (t - now) + 1000)
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

const PAUSE_LEFT_SCRIPT = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local left = 0
for i = 1, #KEYS do
  local p = tonumber(redis.call('GET', KEYS[i]) or '0')
  if p - now > left then left = p - now end
end
return left
`;

const BACKLOG_SCRIPT = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then return tonumber(last[2]) - now end
return 0
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
  /** Share of the app budget background work keeps while live work waits (never starved). */
  backgroundReserve?: number;
}

/** Live: webhook-driven fetches. Background: backfill and reconciliation. */
export type Priority = 'live' | 'background';

export interface Permit {
  /** Milliseconds waited for the permit. */
  waitedMs: number;
  /** When the slot began (local clock). A request sent much later would arrive off its slot. */
  slotAt: number;
}

/** A permit used later than this after its slot is taken again (see OuraClient.send). */
export const STALE_PERMIT_MS = 250;

/** Default safety margin: 2.5% of the window, between 250 ms and 1 s. */
function defaultMargin(r: RateLimit): number {
  return Math.min(1000, Math.max(250, r.windowS * 25));
}

function tierArgs(r: RateLimit, marginMs: number | undefined): number[] {
  const window = r.windowS * 1000 + (marginMs ?? defaultMargin(r));
  return [r.limit, window, Math.floor(window / r.limit)];
}

export function tokenKey(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('hex').slice(0, 24);
}

export function createLimiter(redis: Redis, opts: LimiterOptions) {
  const cmd = defineScripts(redis, {
    ouraLimiterAcquire: SCRIPT,
    ouraLimiterPause: PAUSE_SCRIPT,
    ouraLimiterPauseLeft: PAUSE_LEFT_SCRIPT,
    ouraLimiterBacklog: BACKLOG_SCRIPT,
  });
  const prefix = `${opts.prefix ?? 'oura-ingest'}:{limiter}`;
  const marginMs = opts.marginMs;
  const maxAheadMs = opts.maxAheadMs ?? 8000;
  const backgroundMaxAheadMs = Math.min(maxAheadMs, 500);
  const reserve = opts.backgroundReserve ?? 0.1;
  const tierKeys = (tier: string) => [`${prefix}:${tier}:log`, `${prefix}:${tier}:pause`, `${prefix}:${tier}:override`];
  const tokenTier = (tokenId: string) => `token:${tokenId}`;

  async function tryAcquire(
    tokenId: string | null,
    priority: Priority,
    member: string,
  ): Promise<{ granted: boolean; paused: boolean; delayMs: number }> {
    const keys = [`${prefix}:live-waiters`, `${prefix}:background:log`, ...tierKeys('app')];
    const ahead = priority === 'live' ? maxAheadMs : backgroundMaxAheadMs;
    const args: (string | number)[] = [ahead, member, 1, priority, reserve, ...tierArgs(opts.app, marginMs)];
    if (tokenId) {
      keys.push(...tierKeys(tokenTier(tokenId)));
      // Without a known token limit the token tier still honours pauses and limits Oura announces.
      args[2] = 2;
      args.push(...(opts.token ? tierArgs(opts.token, marginMs) : [1_000_000_000, 1000, 0]));
    }
    const [code, delay] = (await cmd.ouraLimiterAcquire(keys.length, ...keys, ...args)) as [number, number];
    return { granted: code === 1, paused: code === 2, delayMs: Math.max(0, delay) };
  }

  return {
    /**
     * How far ahead the application tier is booked, in ms: 0 when a request
     * could go now; large when the budget is scarce.
     */
    async backlogMs(): Promise<number> {
      const v = (await cmd.ouraLimiterBacklog(1, tierKeys('app')[0]!)) as number;
      return Math.max(0, v);
    },
    /**
     * Waits for a permit to send one request to Oura. `tierName` names the
     * token tier (the client passes `user:<id>` for a user's requests, see
     * limiterTier, or a raw access token before the user is stored); token
     * endpoint and subscription calls pass null (application tier only). Live
     * work goes ahead of background work.
     */
    async acquire(tierName: string | null, options: { priority?: Priority; signal?: AbortSignal } = {}): Promise<Permit> {
      const started = Date.now();
      const priority = options.priority ?? 'live';
      const tokenId = tierName ? tokenKey(tierName) : null;
      const member = randomUUID();
      for (;;) {
        options.signal?.throwIfAborted();
        const { granted, paused, delayMs } = await tryAcquire(tokenId, priority, member);
        if (paused) {
          // Oura asked us to wait: sleep it out (with jitter so waiters do not return at once).
          await sleep(delayMs + Math.random() * 100, options.signal);
          continue;
        }
        if (granted) {
          if (delayMs > 0) {
            await sleep(delayMs, options.signal);
            // A 429 may have paused the tier while this caller slept on its booking.
            const pauseKeys = [tierKeys('app')[1]!, ...(tokenId ? [tierKeys(tokenTier(tokenId))[1]!] : [])];
            const left = (await cmd.ouraLimiterPauseLeft(pauseKeys.length, ...pauseKeys)) as number;
            if (left > 0) {
              await sleep(left, options.signal);
              continue;
            }
          }
          return { waitedMs: Date.now() - started, slotAt: Date.now() };
        }
        // Not booked: come back a little before the slot could open, with jitter
        // so waiters from many processes do not all return at once.
        const ahead = priority === 'live' ? maxAheadMs : backgroundMaxAheadMs;
        await sleep(Math.max(50, Math.min(delayMs - ahead / 2, 5000)) + Math.random() * 100, options.signal);
      }
    },
    /**
     * Oura said stop (429): no permit is granted for the tier until `ms` from
     * now. A limit Oura announces that is lower than ours replaces ours until
     * its window resets.
     */
    async pause(
      tier: 'application' | 'token',
      ms: number,
      accessToken?: string | null,
      announced?: { limit: number | null; windowS: number | null; resetAt: number | null } | null,
    ): Promise<void> {
      const name = tier === 'application' || !accessToken ? 'app' : tokenTier(tokenKey(accessToken));
      const [, pauseKey, overrideKey] = tierKeys(name);
      await cmd.ouraLimiterPause(1, pauseKey!, Math.max(0, Math.ceil(ms)));
      if (announced?.limit && announced.windowS) {
        const windowMs = announced.windowS * 1000 + (marginMs ?? defaultMargin({ limit: announced.limit, windowS: announced.windowS }));
        const ttl = announced.resetAt ? Math.max(announced.resetAt * 1000 - Date.now(), ms) : windowMs;
        // The script only lets an override lower the rate, never raise it.
        await redis.set(overrideKey!, `${announced.limit}:${windowMs}`, 'PX', Math.max(1000, Math.ceil(ttl)));
      }
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
