import type { RedisClient } from '../redis-connect.js';

/**
 * Counts of what the budget was spent on, shared by every process: requests
 * sent to Oura by purpose, webhook events served, background runs finished.
 * Kept in Redis per minute (for the last hour) and per hour (for the last
 * day), so that the api can report what the workers did (GET /admin/budget).
 * Prometheus counters (oura_ingest_oura_requests_total) hold the same
 * requests per process, for dashboards and alerts.
 */
export type UsageCounter = `requests:${string}` | 'events_served' | `runs:${string}`;

const MINUTE = 60_000;
const HOUR = 3_600_000;

export function createUsageLog(redis: RedisClient, prefix: string) {
  // One hash tag: under Redis Cluster a counter's minute and hour keys share a slot.
  const base = `${prefix}:{budget}`;
  const minuteKey = (t: number) => `${base}:m:${Math.floor(t / MINUTE)}`;
  const hourKey = (t: number) => `${base}:h:${Math.floor(t / HOUR)}`;

  async function sum(keys: string[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const replies = await redis.pipeline(keys.map((k) => ['hgetall', k])).exec();
    for (const [err, value] of replies ?? []) {
      if (err || !value) continue;
      for (const [name, n] of Object.entries(value as Record<string, string>)) out[name] = (out[name] ?? 0) + Number(n);
    }
    return out;
  }

  return {
    /** Adds `n` to a counter. Never throws: accounting must not fail the work it counts. */
    record(counter: UsageCounter, n = 1): void {
      if (n <= 0) return;
      const now = Date.now();
      const m = minuteKey(now);
      const h = hourKey(now);
      redis
        .multi()
        .hincrby(m, counter, n)
        .pexpire(m, HOUR + 2 * MINUTE)
        .hincrby(h, counter, n)
        .pexpire(h, 25 * HOUR)
        .exec()
        .catch(() => {});
    },
    /** Counters over the last 60 whole minutes plus this one. */
    async lastHour(now = Date.now()): Promise<Record<string, number>> {
      return sum(Array.from({ length: 61 }, (_, i) => minuteKey(now - i * MINUTE)));
    },
    /** Counters over the last 24 whole hours plus this one. */
    async lastDay(now = Date.now()): Promise<Record<string, number>> {
      return sum(Array.from({ length: 25 }, (_, i) => hourKey(now - i * HOUR)));
    },
  };
}
export type UsageLog = ReturnType<typeof createUsageLog>;
