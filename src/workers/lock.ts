import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const EXTEND = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * Runs `fn` while holding a Redis lock, renewing it until `fn` settles.
 * Returns `{ acquired: false }` at once when someone else holds it.
 */
export async function withLock<T>(
  redis: Redis,
  key: string,
  fn: () => Promise<T>,
  ttlMs = 30_000,
): Promise<{ acquired: true; value: T } | { acquired: false }> {
  const owner = randomUUID();
  if ((await redis.set(key, owner, 'PX', ttlMs, 'NX')) !== 'OK') return { acquired: false };
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
