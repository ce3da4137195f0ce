import type { RedisClient } from '../redis-connect.js';
import { defineScripts } from '../redis-scripts.js';

/**
 * Admits a user's (user, data type) pairs to be served, at most `limit` at a
 * time, the pair waiting longest first. Shared by every worker process.
 *
 * Per user, three sorted sets:
 *   - active: pairs being served, scored by when their lease ends (a worker
 *     that dies releases its pairs when the lease runs out);
 *   - waiting: pairs refused so far, scored by their oldest pending event;
 *   - seen: when each waiting pair last asked (a waiter that stops asking,
 *     its job held or gone, stops blocking the others after `staleMs`).
 * A pair is admitted when a slot is free and fewer waiters older than it
 * than there are free slots: a younger pair cannot take the slot an older one
 * is about to ask for again.
 */
const ENTER = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local active, waiting, seen = KEYS[1], KEYS[2], KEYS[3]
local pair = ARGV[1]
local since = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local stale = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', active, '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now - stale)
for _, p in ipairs(gone) do
  redis.call('ZREM', waiting, p)
  redis.call('ZREM', seen, p)
end
local admitted = false
if redis.call('ZSCORE', active, pair) then
  admitted = true
else
  local free = limit - redis.call('ZCARD', active)
  if free > 0 then
    local mine = tonumber(redis.call('ZSCORE', waiting, pair) or since)
    if mine > since then mine = since end
    admitted = redis.call('ZCOUNT', waiting, '-inf', '(' .. mine) < free
  end
end
local ttl = lease + stale + 1000
if admitted then
  redis.call('ZADD', active, now + lease, pair)
  redis.call('ZREM', waiting, pair)
  redis.call('ZREM', seen, pair)
  redis.call('PEXPIRE', active, ttl)
  return 1
end
redis.call('ZADD', waiting, 'LT', since, pair)
redis.call('ZADD', seen, now, pair)
redis.call('PEXPIRE', waiting, ttl)
redis.call('PEXPIRE', seen, ttl)
return 0
`;

const RENEW = `
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
end
return 1
`;

export interface PairGateOptions {
  prefix: string;
  /** A pair's slot is freed this long after its worker last renewed it (a crashed worker). */
  leaseMs?: number;
  /** A waiting pair not asking again for this long no longer holds its place. */
  staleMs?: number;
}

export function createPairGate(redis: RedisClient, opts: PairGateOptions) {
  const cmd = defineScripts(redis, { ouraPairGateEnter: ENTER, ouraPairGateRenew: RENEW });
  const enter = (...a: Array<string | number>) => cmd.ouraPairGateEnter(3, ...a);
  const renewLease = (...a: Array<string | number>) => cmd.ouraPairGateRenew(1, ...a);
  const leaseMs = opts.leaseMs ?? 30_000;
  const staleMs = opts.staleMs ?? 5000;
  const keys = (userId: string) => {
    const base = `${opts.prefix}:pairs:{${userId}}`;
    return [`${base}:active`, `${base}:waiting`, `${base}:seen`] as const;
  };

  return {
    /**
     * Runs `fn` if the pair is admitted; `{ admitted: false }` otherwise (ask
     * again shortly). `since`: when the pair's oldest pending event arrived.
     */
    async run<T>(
      userId: string,
      dataType: string,
      since: Date,
      limit: number,
      fn: () => Promise<T>,
    ): Promise<{ admitted: true; value: T } | { admitted: false }> {
      const [active, waiting, seen] = keys(userId);
      const ok = (await enter(active, waiting, seen, dataType, since.getTime(), limit, leaseMs, staleMs)) as number;
      if (ok !== 1) return { admitted: false };
      const renew = setInterval(() => {
        // A failed renewal is harmless: the next one, or the lease's end, settles it.
        renewLease(active, dataType, leaseMs).catch(() => {});
      }, Math.floor(leaseMs / 3));
      try {
        return { admitted: true, value: await fn() };
      } finally {
        clearInterval(renew);
        await redis.zrem(active, dataType).catch(() => {});
      }
    },
  };
}
export type PairGate = ReturnType<typeof createPairGate>;
