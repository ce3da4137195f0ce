import { randomUUID } from 'node:crypto';
import type { RedisClient } from './redis-connect.js';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * A lock stayed held by someone else for longer than the caller would wait:
 * a transient failure (the holder is working, or died and its lock is about
 * to expire), for the caller's retries.
 */
export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
  constructor(
    readonly key: string,
    readonly waitedMs: number,
  ) {
    super(`lock ${key} still held after ${waitedMs} ms`);
  }
}

export interface LockOptions {
  /** Lock lifetime; renewed every third of it while `fn` runs. */
  ttlMs?: number;
  /** How long to wait for a held lock (0: give up at once). */
  waitMs?: number;
}

/**
 * Runs `fn` while holding a Redis lock shared by every process, renewing it
 * until `fn` settles. Returns `{ acquired: false }` when the lock stayed held
 * by someone else for `waitMs`.
 */
export async function withLock<T>(
  redis: RedisClient,
  key: string,
  fn: () => Promise<T>,
  opts: LockOptions = {},
): Promise<{ acquired: true; value: T } | { acquired: false }> {
  const ttlMs = opts.ttlMs ?? 30_000;
  const deadline = Date.now() + (opts.waitMs ?? 0);
  const owner = randomUUID();
  while ((await redis.set(key, owner, 'PX', ttlMs, 'NX')) !== 'OK') {
    if (Date.now() >= deadline) return { acquired: false };
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 50));
  }
  const renew = setInterval(() => {
    redis.eval(EXTEND, 1, key, owner, ttlMs).catch(() => {});
  }, Math.floor(ttlMs / 3));
  try {
    return { acquired: true, value: await fn() };
  } finally {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, owner).catch(() => {});
  }
}
