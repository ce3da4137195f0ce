import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createLimiter, type Priority } from '../src/oura/limiter.js';
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

  test('live work goes ahead of background work, and background is never starved', async () => {
    const l = limiter({ app: { limit: 20, windowS: 1 }, backgroundReserve: 0.1 });
    const grants: Array<{ t: number; p: Priority; waited: number }> = [];
    const end = Date.now() + 4000;
    const loop = (p: Priority) => async () => {
      while (Date.now() < end) {
        const { waitedMs } = await l.acquire(null, { priority: p });
        grants.push({ t: Date.now(), p, waited: waitedMs });
      }
    };
    // Both kinds want far more than the budget.
    await Promise.all([...Array.from({ length: 8 }, loop('background')), ...Array.from({ length: 8 }, loop('live'))]);
    const live = grants.filter((g) => g.p === 'live').length;
    const bg = grants.filter((g) => g.p === 'background').length;
    assert.ok(live > bg * 3, `live ${live} vs background ${bg}`);
    assert.ok(bg >= 4, `background still progressed: ${bg}`);
    assert.ok(peak(grants.map((g) => g.t), 1000) <= 20);
  });

  test('background alone uses the whole budget', async () => {
    const l = limiter({ app: { limit: 20, windowS: 1 } });
    let n = 0;
    const end = Date.now() + 2000;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (Date.now() < end) {
          await l.acquire(null, { priority: 'background' });
          n++;
        }
      }),
    );
    assert.ok(n >= 30, `background got ${n} permits in 2 s at 20/s`);
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
