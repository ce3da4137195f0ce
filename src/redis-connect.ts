import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config.js';

/**
 * Every Redis connection of the service is made here, so that one setting
 * decides for all of them (queues, workers, limiter, locks) where Redis is:
 *   - REDIS_URL: one server;
 *   - REDIS_SENTINELS (host:port, …) and REDIS_SENTINEL_NAME: the master that
 *     Sentinel names, found again after a failover. A connection to a master
 *     demoted to replica meets READONLY errors until Sentinel's reconfiguration
 *     reaches it; such a command reconnects (through Sentinel, to the new
 *     master) and is sent again, so no write is lost to the switch.
 */
export function redisConnector(config: Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME'>) {
  return (opts: RedisOptions): Redis => {
    if (config.REDIS_SENTINELS.length > 0) {
      const url = config.REDIS_URL ? new URL(config.REDIS_URL) : null;
      return new Redis({
        ...opts,
        sentinels: config.REDIS_SENTINELS,
        name: config.REDIS_SENTINEL_NAME,
        // Credentials and database of the master, when REDIS_URL gives them.
        ...(url?.password ? { password: decodeURIComponent(url.password) } : {}),
        ...(url?.username ? { username: decodeURIComponent(url.username) } : {}),
        ...(url && url.pathname.length > 1 ? { db: Number(url.pathname.slice(1)) } : {}),
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
        // A failover takes seconds: keep looking for the new master meanwhile.
        sentinelRetryStrategy: (times) => Math.min(times * 200, 2000),
      });
    }
    return new Redis(config.REDIS_URL!, opts);
  };
}
export type RedisConnector = ReturnType<typeof redisConnector>;
