import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { createPairGate } from '../src/workers/pair-gate.js';
import { clearPrefix, getServices, uniquePrefix } from './helpers/env.js';

/** A pair that stays admitted until `release` is called. */
function hold() {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return { release, done };
}

describe("a user's pairs under a scarce budget (real Redis)", () => {
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
  function gate(opts: { leaseMs?: number; staleMs?: number } = {}) {
    const prefix = uniquePrefix('gate');
    prefixes.push(prefix);
    return createPairGate(redis, { prefix, ...opts });
  }
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

  test('at most `limit` pairs of one user at once; other users are not held back', async () => {
    const g = gate();
    const a = hold();
    const b = hold();
    const first = g.run('u1', 'sleep', at(1), 2, () => a.done);
    const second = g.run('u1', 'workout', at(2), 2, () => b.done);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(await g.run('u1', 'tag', at(3), 2, async () => 'ran'), { admitted: false });
    assert.deepEqual(await g.run('u2', 'tag', at(3), 2, async () => 'ran'), { admitted: true, value: 'ran' });
    a.release();
    await first;
    assert.deepEqual(await g.run('u1', 'tag', at(3), 2, async () => 'ran'), { admitted: true, value: 'ran' });
    b.release();
    await second;
  });

  test('a freed slot goes to the pair waiting longest, not to whichever asks first', async () => {
    const g = gate();
    const a = hold();
    const busy = g.run('u1', 'sleep', at(1), 1, () => a.done);
    await new Promise((r) => setTimeout(r, 50));
    // Both are refused while the slot is taken; the older one is now in line.
    assert.equal((await g.run('u1', 'daily_sleep', at(5), 1, async () => 'young')).admitted, false);
    assert.equal((await g.run('u1', 'workout', at(2), 1, async () => 'old')).admitted, false);
    a.release();
    await busy;
    assert.equal((await g.run('u1', 'daily_sleep', at(5), 1, async () => 'young')).admitted, false, 'the younger pair still waits');
    assert.deepEqual(await g.run('u1', 'workout', at(2), 1, async () => 'old'), { admitted: true, value: 'old' });
    assert.deepEqual(await g.run('u1', 'daily_sleep', at(5), 1, async () => 'young'), { admitted: true, value: 'young' });
  });

  test('a waiter that stops asking, and a pair whose worker died, stop blocking the others', async () => {
    const prefix = uniquePrefix('gate');
    prefixes.push(prefix);
    const opts = { prefix, leaseMs: 300, staleMs: 1000 };
    const g = createPairGate(redis, opts);
    // A worker admitted, then gone with its connection: its lease is no longer renewed.
    const lost = new Redis(url);
    const crashed = createPairGate(lost, opts);
    void crashed.run('u1', 'sleep', at(1), 1, () => new Promise(() => {})).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    lost.disconnect();
    assert.equal((await g.run('u1', 'workout', at(0), 1, async () => 'x')).admitted, false, 'the slot is taken');
    // The crashed pair's lease runs out, but workout (older) was in line and has stopped asking:
    // tag waits until workout no longer holds its place either.
    await new Promise((r) => setTimeout(r, 320));
    assert.equal((await g.run('u1', 'tag', at(9), 1, async () => 'tag')).admitted, false, 'workout is older and still in line');
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await g.run('u1', 'tag', at(9), 1, async () => 'tag'), { admitted: true, value: 'tag' });
  });
});
