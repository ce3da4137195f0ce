import type { RedisClient } from './redis-connect.js';

/** A Lua script as a command: `(numKeys, ...keys, ...args)`. */
export type ScriptCommand = (numKeys: number, ...keysAndArgs: Array<string | number>) => Promise<unknown>;

/**
 * Lua scripts as ioredis commands on `redis`: sent by SHA (EVALSHA), loaded
 * once per connection (ioredis falls back to EVAL after a NOSCRIPT), rather
 * than the whole script with every call. Names are global to the
 * connection: defining one twice keeps the first.
 */
export function defineScripts<N extends string>(redis: RedisClient, scripts: Record<N, string>): Record<N, ScriptCommand> {
  const r = redis as unknown as Record<string, ScriptCommand | undefined>;
  for (const [name, lua] of Object.entries<string>(scripts)) if (!r[name]) redis.defineCommand(name, { lua });
  const out = {} as Record<N, ScriptCommand>;
  for (const name of Object.keys(scripts) as N[]) out[name] = (...a) => r[name]!.apply(redis, a);
  return out;
}
