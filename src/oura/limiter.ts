import { createHash, randomUUID } from 'node:crypto';
import type { RedisClient } from '../redis-connect.js';
import type { RateLimit } from '../config.js';
import { defineScripts } from '../redis-scripts.js';
import { DEFAULT_FLOORS, LANES, type BackgroundLane, type Lane } from './lanes.js';

export { LANES, DEFAULT_FLOORS, type Lane, type BackgroundLane } from './lanes.js';

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
 * in every tier at once. If t is within the caller's look-ahead it is booked
 * and the caller sleeps until t; otherwise nothing is booked and the caller is
 * told when to ask again (so a long queue of waiters cannot book the whole
 * future).
 *
 * Lanes plan the application budget (see LANES). A caller refused registers in
 * its lane's waiters for a few seconds. A lane yields while any lane above it
 * has waiters, unless it has used less than its floor (a share of N) in the
 * current window: then it books up to `floorAheadMs` ahead, the lanes above it
 * leave room for what remains of its floor, and none books further ahead than
 * that meanwhile (a booking goes after the last one booked, which must stay
 * near). So background work runs in the room live work leaves, and under a
 * saturating live load each background lane still gets its floor, provided it
 * has callers enough to use it (about floor × N/W × 1 s of them). Background
 * lanes book only a couple of slots ahead, so that live work arriving finds
 * the next slots free.
 *
 * KEYS: 4 waiters sets, 4 used logs (one per lane), then log, pause and
 * override of each tier. ARGV: look-ahead, member, tier count, lane (1-4),
 * 4 floors (share of N), the floor look-ahead, then limit, window and spacing
 * of each tier.
 */
const SCRIPT = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local max_ahead = tonumber(ARGV[1])
local member = ARGV[2]
local ntiers = tonumber(ARGV[3])
local lane = tonumber(ARGV[4])
local floor_ahead = tonumber(ARGV[9])
local NL = 4
local T0 = 2 * NL
local A0 = 9
local function tier_limits(i)
  local limit = tonumber(ARGV[A0 + 1 + i * 3])
  local window = tonumber(ARGV[A0 + 2 + i * 3])
  local spacing = tonumber(ARGV[A0 + 3 + i * 3])
  local ov = redis.call('GET', KEYS[T0 + 3 + i * 3])
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
  return limit, window, spacing
end
local app_limit, app_window = tier_limits(0)
local waiting = {}
local used = {}
local floor_slots = {}
for i = 1, NL do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  waiting[i] = redis.call('ZCARD', KEYS[i])
  redis.call('ZREMRANGEBYSCORE', KEYS[NL + i], '-inf', now - app_window)
  used[i] = redis.call('ZCARD', KEYS[NL + i])
  local f = tonumber(ARGV[4 + i])
  floor_slots[i] = 0
  if f > 0 then floor_slots[i] = math.max(1, math.floor(app_limit * f)) end
end
local function wait_here(ahead)
  redis.call('ZADD', KEYS[lane], now + math.max(ahead, 5000) + 2000, member)
  redis.call('PEXPIRE', KEYS[lane], math.max(ahead, 5000) + 3000)
end
local protected = used[lane] < floor_slots[lane]
if not protected then
  for i = 1, lane - 1 do
    if waiting[i] > 0 then
      wait_here(max_ahead)
      return {0, 500}
    end
  end
end
-- Room kept for the lanes below that wait while under their floor.
local reserved = 0
for i = lane + 1, NL do
  if waiting[i] > 0 and used[i] < floor_slots[i] then reserved = reserved + floor_slots[i] - used[i] end
end
local t = now
local windows = {}
local paused_until = 0
for i = 0, ntiers - 1 do
  local log = KEYS[T0 + 1 + i * 3]
  local limit, window, spacing = tier_limits(i)
  if i == 0 then limit = math.max(1, limit - reserved) end
  windows[i] = window
  redis.call('ZREMRANGEBYSCORE', log, '-inf', now - window)
  local p = tonumber(redis.call('GET', KEYS[T0 + 2 + i * 3]) or '0')
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
-- While a lane below waits under its floor, no lane books further ahead than
-- floor_ahead: the floor lane books behind the last slot, which must stay near.
if reserved > 0 and max_ahead > floor_ahead then max_ahead = floor_ahead end
local ahead = max_ahead
if protected and floor_ahead > ahead then ahead = floor_ahead end
if t - now > ahead then
  wait_here(ahead)
  return {0, t - now}
end
redis.call('ZREM', KEYS[lane], member)
redis.call('ZADD', KEYS[NL + lane], t, member)
redis.call('PEXPIRE', KEYS[NL + lane], app_window + (t - now) + 1000)
for i = 0, ntiers - 1 do
  local log = KEYS[T0 + 1 + i * 3]
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
  /** Longest reservation made by live work; waiters further out poll again. */
  maxAheadMs?: number;
  /** Longest reservation while a lane waits under its floor (by that lane, and by every other). */
  floorAheadMs?: number;
  /** Each background lane's floor: the share of N it keeps in every window while it has work, whatever the live load. */
  floors?: Partial<Record<BackgroundLane, number>>;
}

export interface Permit {
  /** Milliseconds waited for the permit. */
  waitedMs: number;
  /**
   * When the slot began, on the local clock: when the limiter answered plus
   * the delay it booked, not when the caller woke up, so a timer that fired
   * late counts as lateness. A request sent much later would arrive off its slot.
   */
  slotAt: number;
}

/**
 * A permit used later than this after its slot is taken again (see
 * OuraClient.send); each limiter uses less when its margin is small (see
 * staleAfterMs).
 */
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

export function createLimiter(redis: RedisClient, opts: LimiterOptions) {
  const cmd = defineScripts(redis, {
    ouraLimiterAcquire: SCRIPT,
    ouraLimiterPause: PAUSE_SCRIPT,
    ouraLimiterPauseLeft: PAUSE_LEFT_SCRIPT,
    ouraLimiterBacklog: BACKLOG_SCRIPT,
  });
  const prefix = `${opts.prefix ?? 'oura-ingest'}:{limiter}`;
  const marginMs = opts.marginMs;
  // Requests reach Oura some time after their slots, and the window's margin
  // absorbs how much that time varies: a permit used at most this late leaves
  // more than half the margin for the network and the far side.
  const staleAfterMs = Math.min(STALE_PERMIT_MS, Math.floor(0.4 * (marginMs ?? defaultMargin(opts.app))));
  const maxAheadMs = opts.maxAheadMs ?? 8000;
  // Two slots' spacing (100-500 ms): background keeps the next slots free for live work.
  const backgroundMaxAheadMs = Math.min(maxAheadMs, Math.max(100, Math.min(500, Math.floor((2 * opts.app.windowS * 1000) / opts.app.limit))));
  const floorAheadMs = Math.min(maxAheadMs, opts.floorAheadMs ?? 1000);
  const floors = { ...DEFAULT_FLOORS, ...opts.floors };
  const laneKeys = [
    ...LANES.map((l) => `${prefix}:lane:${l}:waiters`),
    ...LANES.map((l) => `${prefix}:lane:${l}:used`),
  ];
  const tierKeys = (tier: string) => [`${prefix}:${tier}:log`, `${prefix}:${tier}:pause`, `${prefix}:${tier}:override`];
  const tokenTier = (tokenId: string) => `token:${tokenId}`;

  const aheadOf = (lane: Lane) => (lane === 'live' ? maxAheadMs : backgroundMaxAheadMs);

  async function tryAcquire(
    tokenId: string | null,
    lane: Lane,
    member: string,
  ): Promise<{ granted: boolean; paused: boolean; delayMs: number }> {
    const keys = [...laneKeys, ...tierKeys('app')];
    const args: (string | number)[] = [
      aheadOf(lane),
      member,
      1,
      LANES.indexOf(lane) + 1,
      0,
      floors.backfill,
      floors.timeseries,
      floors.reconcile,
      floorAheadMs,
      ...tierArgs(opts.app, marginMs),
    ];
    if (tokenId) {
      keys.push(...tierKeys(tokenTier(tokenId)));
      // Without a known token limit the token tier still honours pauses and limits Oura announces.
      args[2] = 2;
      args.push(...(opts.token ? tierArgs(opts.token, marginMs) : [1_000_000_000, 1000, 0]));
    }
    const [code, delay] = (await cmd.ouraLimiterAcquire(keys.length, ...keys, ...args)) as [number, number];
    return { granted: code === 1, paused: code === 2, delayMs: Math.max(0, delay) };
  }

  async function pauseLeftOf(tokenId: string | null): Promise<number> {
    const pauseKeys = [tierKeys('app')[1]!, ...(tokenId ? [tierKeys(tokenTier(tokenId))[1]!] : [])];
    return (await cmd.ouraLimiterPauseLeft(pauseKeys.length, ...pauseKeys)) as number;
  }

  return {
    /** A permit whose slot began longer ago than this is not used: its request could arrive in a later window. */
    staleAfterMs,
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
     * endpoint and subscription calls pass null (application tier only). The
     * lane decides the request's place in the budget (see LANES).
     */
    async acquire(tierName: string | null, options: { lane?: Lane; signal?: AbortSignal } = {}): Promise<Permit> {
      const started = Date.now();
      const lane = options.lane ?? 'live';
      const tokenId = tierName ? tokenKey(tierName) : null;
      const member = randomUUID();
      for (;;) {
        options.signal?.throwIfAborted();
        const { granted, paused, delayMs } = await tryAcquire(tokenId, lane, member);
        const answeredAt = Date.now();
        if (paused) {
          // Oura asked us to wait: sleep it out (with jitter so waiters do not return at once).
          await sleep(delayMs + Math.random() * 100, options.signal);
          continue;
        }
        if (granted) {
          if (delayMs > 0) {
            await sleep(delayMs, options.signal);
            // A 429 may have paused the tier while this caller slept on its booking.
            const left = await pauseLeftOf(tokenId);
            if (left > 0) {
              await sleep(left, options.signal);
              continue;
            }
          }
          return { waitedMs: Date.now() - started, slotAt: answeredAt + delayMs };
        }
        // Not booked: come back a little before the slot could open, with jitter
        // so waiters from many processes do not all return at once.
        await sleep(Math.max(50, Math.min(delayMs - aheadOf(lane) / 2, 5000)) + Math.random() * 100, options.signal);
      }
    },
    /**
     * Milliseconds left of a pause (a 429) holding the application tier or
     * `tierName`'s token tier; 0 when none. A permit granted before another
     * process saw the 429 is checked with this just before its request goes.
     */
    async pauseLeft(tierName: string | null): Promise<number> {
      return Math.max(0, await pauseLeftOf(tierName ? tokenKey(tierName) : null));
    },
    /**
     * Redis came back (a failover, a restart): bookings acknowledged by the
     * server before may be missing from this one, so the application tier is
     * paused for one whole window, and every process's next requests start
     * in a window none of the lost bookings can reach.
     */
    async afterReconnect(): Promise<void> {
      const [windowMs] = [tierArgs(opts.app, marginMs)[1]!];
      await cmd.ouraLimiterPause(1, tierKeys('app')[1]!, windowMs);
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
