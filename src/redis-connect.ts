import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { parseClusterUrl, type Config } from './config.js';

/** A connection to one server (or the master Sentinel names), or to a Redis Cluster. */
export type RedisClient = Redis | Cluster;

type RedisSettings = Pick<Config, 'REDIS_URL' | 'REDIS_SENTINELS' | 'REDIS_SENTINEL_NAME' | 'REDIS_CLUSTER_NODES'>;

/**
 * Every Redis connection of the service is made here, so that one setting
 * decides for all of them (queues, workers, limiter, locks) where Redis is:
 *   - REDIS_URL: one server;
 *   - REDIS_SENTINELS (host:port, …) and REDIS_SENTINEL_NAME: the master that
 *     Sentinel names, found again after a failover. A connection to a master
 *     demoted to replica meets READONLY errors until Sentinel's reconfiguration
 *     reaches it; such a command reconnects (through Sentinel, to the new
 *     master) and is sent again, so no write is lost to the switch.
 *   - REDIS_CLUSTER_NODES, or a `redis+cluster://` REDIS_URL: a Redis Cluster.
 *     The client learns the slots from these nodes, sends each command to the
 *     master of its keys' slot, and follows MOVED after a failover or a
 *     resharding. Every key of the service shares the prefix's hash tag
 *     (src/config.ts), so every multi-key command and script stays in one slot.
 */
export function redisConnector(config: RedisSettings) {
  return (opts: RedisOptions): RedisClient => {
    if (config.REDIS_CLUSTER_NODES.length > 0) {
      // enableOfflineQueue and lazyConnect belong to the cluster, the rest to each node's connection.
      const { enableOfflineQueue, lazyConnect, ...node } = opts;
      return new Cluster(config.REDIS_CLUSTER_NODES, {
        enableOfflineQueue,
        lazyConnect,
        redisOptions: { ...node, ...clusterAuth(config.REDIS_URL) },
      });
    }
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

/** Credentials and TLS of the cluster's nodes, from REDIS_URL (`redis[s]+cluster://` or `redis[s]://`). */
function clusterAuth(redisUrl: string | undefined): Pick<RedisOptions, 'username' | 'password' | 'tls'> {
  if (!redisUrl) return {};
  const cluster = parseClusterUrl(redisUrl);
  if (cluster === 'malformed') return {};
  if (cluster) {
    return {
      ...(cluster.username ? { username: cluster.username } : {}),
      ...(cluster.password ? { password: cluster.password } : {}),
      ...(cluster.tls ? { tls: {} } : {}),
    };
  }
  const url = new URL(redisUrl);
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * A connection to the Redis a REDIS_URL alone names: one server, or a
 * cluster (`redis+cluster://`). For tools that are given a URL, not the
 * service's configuration.
 */
export function connectRedisUrl(redisUrl: string, opts: RedisOptions = {}): RedisClient {
  const cluster = parseClusterUrl(redisUrl);
  if (cluster === 'malformed') throw new Error('REDIS_URL: expected redis+cluster://[user:password@]host:port[,host:port…]');
  return redisConnector({ REDIS_URL: redisUrl, REDIS_SENTINELS: [], REDIS_SENTINEL_NAME: 'mymaster', REDIS_CLUSTER_NODES: cluster?.nodes ?? [] })(opts);
}
