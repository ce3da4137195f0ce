import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createLimiter, type Lane } from '../src/oura/limiter.js';
import { clearPrefix, getServices, uniquePrefix } from './helpers/env.js';

/** The most grants in any rolling window. */
function peak(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let lo = 0, hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe('limiter (real Redis)', () => {
  let redis: Redis;
  let url: string;
  const prefixes: string[] = [];
  before(async () => {
    url = (await getServices()).redisUrl;
    redis = new Redis(url);
  });
  after(async () => {
    for (const p of prefixes) await clearPrefix(url, p);
    await redis.quit();
  });
  function limiter(opts: Parameters<typeof createLimiter>[1]) {
    const prefix = uniquePrefix('lim');
    prefixes.push(prefix);
    return createLimiter(redis, { ...opts, prefix });
  }

  test('from many concurrent callers, never more than N in any rolling W, spaced evenly', async () => {
    const l = limiter({ app: { limit: 10, windowS: 1 } });
    const grants: number[] = [];
    const end = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        while (Date.now() < end) {
          await l.acquire(null);
          grants.push(Date.now());
        }
      }),
    );
    assert.ok(peak(grants, 1000) <= 10, `peak ${peak(grants, 1000)}`);
    // Even spacing: no burst of the whole window at once.
    assert.ok(peak(grants, 250) <= 4, `burst ${peak(grants, 250)} in 250 ms`);
    assert.ok(grants.length >= 24, `used the budget: ${grants.length} grants in 3 s`);
  });

  /** Callers per lane asking without pause until `ms` have passed; the grants by lane. */
  async function saturate(l: ReturnType<typeof limiter>, callers: Partial<Record<Lane, number>>, ms: number) {
    const grants: Array<{ t: number; lane: Lane }> = [];
    const end = Date.now() + ms;
    const loop = (lane: Lane) => async () => {
      while (Date.now() < end) {
        await l.acquire(null, { lane });
        grants.push({ t: Date.now(), lane });
      }
    };
    await Promise.all(Object.entries(callers).flatMap(([lane, n]) => Array.from({ length: n }, loop(lane as Lane))));
    const count = (lane: Lane) => grants.filter((g) => g.lane === lane).length;
    return { grants, count };
  }

  test('under a saturating live load each background lane still gets its floor, and live the rest', async () => {
    const floors = { backfill: 0.1, timeseries: 0.1, reconcile: 0.1 };
    const l = limiter({ app: { limit: 20, windowS: 1 }, floors });
    // Every lane wants far more than the budget.
    const { grants, count } = await saturate(l, { live: 8, backfill: 4, timeseries: 4, reconcile: 4 }, 5000);
    const total = grants.length;
    for (const lane of ['backfill', 'timeseries', 'reconcile'] as const) {
      // 10 % of 20 a window: about 2 a second, 10 in 5 s (the first window's bookings included).
      assert.ok(count(lane) >= 6 && count(lane) <= 16, `${lane} got ${count(lane)} of ${total}`);
    }
    assert.ok(count('live') >= total * 0.55, `live got ${count('live')} of ${total}`);
    assert.ok(total >= 80, `the budget was used: ${total} grants in 5 s at 20/s`);
    assert.ok(peak(grants.map((g) => g.t), 1000) <= 20, `peak ${peak(grants.map((g) => g.t), 1000)}`);
  });

  test('background work is served in the room live work leaves, the higher lane first', async () => {
    const l = limiter({ app: { limit: 20, windowS: 1 }, floors: { backfill: 0.1, timeseries: 0.1, reconcile: 0.1 } });
    const grants: Array<{ t: number; lane: Lane }> = [];
    const end = Date.now() + 4000;
    // Live asks for about 8 of the 20 a second.
    const live = (async () => {
      while (Date.now() < end) {
        await l.acquire(null, { lane: 'live' });
        grants.push({ t: Date.now(), lane: 'live' });
        await new Promise((r) => setTimeout(r, 125));
      }
    })();
    const background = saturate(l, { backfill: 3, reconcile: 3 }, 4000);
    await live;
    const bg = await background;
    const all = [...grants, ...bg.grants];
    const liveN = grants.length;
    // Each live request waits at most for the slot or two background booked ahead.
    assert.ok(liveN >= 14, `live was served as it asked: ${liveN}`);
    // What live left went to background: the budget was used nearly in full.
    assert.ok(all.length >= 65, `${all.length} grants in 4 s at 20/s`);
    assert.ok(bg.count('backfill') > bg.count('reconcile') * 2, `backfill ${bg.count('backfill')} before reconcile ${bg.count('reconcile')}`);
    assert.ok(bg.count('reconcile') >= 4, `reconcile kept its floor: ${bg.count('reconcile')}`);
    assert.ok(peak(all.map((g) => g.t), 1000) <= 20);
  });

  test('one background lane alone uses the whole budget', async () => {
    const l = limiter({ app: { limit: 20, windowS: 1 } });
    const { count } = await saturate(l, { reconcile: 6 }, 2000);
    assert.ok(count('reconcile') >= 30, `reconcile got ${count('reconcile')} permits in 2 s at 20/s`);
  });

  test('a permit whose caller woke up late says so: its slot is when it was booked, not when the caller woke', async () => {
    const l = limiter({ app: { limit: 2, windowS: 1 } });
    await l.acquire(null);
    // The next slot is about 600 ms away: the caller sleeps on its booking.
    const next = l.acquire(null);
    await new Promise((r) => setTimeout(r, 100));
    // A stalled event loop: the caller's timer fires about 600 ms late.
    const stallUntil = Date.now() + 1100;
    while (Date.now() < stallUntil);
    const permit = await next;
    const late = Date.now() - permit.slotAt;
    assert.ok(late >= 400, `the permit shows it is ${late} ms past its slot`);
    assert.ok(late > l.staleAfterMs, 'so the client takes a fresh one');
  });

  test('a pause holds every caller of the tier; a token pause holds only that token', async () => {
    const l = limiter({ app: { limit: 100, windowS: 1 } });
    await l.pause('token', 800, 'token-a');
    const t0 = Date.now();
    await l.acquire('token-b');
    assert.ok(Date.now() - t0 < 300, 'token b not held');
    await l.acquire('token-a');
    assert.ok(Date.now() - t0 >= 700, 'token a held');
    await l.pause('application', 600);
    const t1 = Date.now();
    await l.acquire('token-b');
    assert.ok(Date.now() - t1 >= 500, 'application pause holds everyone');
  });

  test('a lower limit announced by Oura replaces ours until its window resets', async () => {
    const l = limiter({ app: { limit: 100, windowS: 1 } });
    await l.pause('application', 0, null, { limit: 5, windowS: 1, resetAt: Math.ceil(Date.now() / 1000) + 3 });
    const grants: number[] = [];
    const end = Date.now() + 2000;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() < end) {
          await l.acquire(null);
          grants.push(Date.now());
        }
      }),
    );
    assert.ok(peak(grants, 1000) <= 5, `peak ${peak(grants, 1000)} under the announced 5/1s`);
  });
});
