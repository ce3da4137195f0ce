import { createHmac } from 'node:crypto';
import type { RedisClient } from './redis-connect.js';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { createTokenCipher } from './crypto.js';
import { createAdminRepo } from './db/admin.js';
import { createBackfillRepo } from './db/backfill.js';
import { createDocumentsRepo } from './db/documents.js';
import { createEventsRepo } from './db/events.js';
import { createDb, createPool } from './db/index.js';
import { migrationsApplied } from './db/migrate.js';
import { createPartnerWebhooksRepo } from './db/partner-webhooks.js';
import { createSeriesRepo } from './db/series.js';
import { createUsersRepo } from './db/users.js';
import { createLogger } from './logger.js';
import { createMetrics, registerCollectors } from './metrics.js';
import { createOuraClient } from './oura/client.js';
import { createSubscriptionsClient } from './oura/subscriptions.js';
import { createLimiter } from './oura/limiter.js';
import { createTokenService } from './oura/tokens.js';
import { createOutageLog, watchOutages } from './outages.js';
import { redisConnector } from './redis-connect.js';
import { withTimeout } from './timeout.js';
import { budgetBacklog } from './budget/report.js';
import { createUsageLog } from './budget/usage.js';
import { REFRESH_KINDS, createBackfillQueue, createEventQueue, createIntakeQueue, createMaintenanceQueue, createRefreshQueue, type RefreshQueues } from './queues/index.js';

/** The run id of the server that holds KEYS[1] (on Redis Cluster, the master of its slot). */
const SERVER_RUN_ID = `return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')`;

export interface DepsOptions {
  log?: Logger;
  /** Namespaces every Redis key (queues, limiter, locks); tests use one per file. */
  prefix?: string;
  dbPoolSize?: number;
}

/**
 * The one composition root: builds the pool, the Redis connections, the Oura
 * client, the limiter and the repositories explicitly. API and worker share it;
 * `close()` releases everything in reverse order.
 */
export function createDeps(config: Config, opts: DepsOptions = {}) {
  const log = opts.log ?? createLogger(config.LOG_LEVEL);
  const prefix = opts.prefix ?? config.REDIS_KEY_PREFIX;
  const closers: Array<() => Promise<unknown>> = [];

  const pool = createPool({ url: config.DATABASE_URL, max: opts.dbPoolSize ?? 10 });
  // An idle client losing its connection must not crash the process (the next
  // query reconnects), but the outage is logged.
  watchOutages(pool, createOutageLog(log, 'postgres'), 'connect');
  closers.push(() => pool.end());
  const db = createDb(pool);

  const redisOpts = { lazyConnect: false, connectTimeout: 3000 };
  const connect = redisConnector(config);
  // General commands (limiter, locks, OAuth state): fail a command after a few retries rather than hang.
  const redis = connect({ ...redisOpts, maxRetriesPerRequest: 2 });
  // Producer side of the queue: no offline queue, so a down Redis fails fast and the webhook answers 503.
  const queueRedis = connect({ ...redisOpts, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  // One log line per outage and per recovery, not one per retry. The queues share queueRedis: one log for both.
  // A Redis Cluster client says `ready` only when it connects anew, not when a failover moved the
  // prefix's slot to another master: there, an outage ends when a command on the slot works again.
  const outageOpts = config.REDIS_CLUSTER_NODES.length > 0 ? { probe: () => redis.exists(`${prefix}:server`) } : {};
  const outageLog = (connection: string) => {
    const o = createOutageLog(log, connection, outageOpts);
    closers.push(async () => o.close());
    return o;
  };
  watchOutages(redis, outageLog('redis'), 'ready');
  // Redis replaced by another server (a failover to a replica, a restart
  // without persistence) may not hold the limiter's latest bookings: nothing
  // is sent until one window has passed, so the window they were in can never
  // hold N + 1 (src/oura/limiter.ts, afterReconnect). A reconnect to the same
  // server (its run id unchanged) costs nothing. The server asked is the one
  // holding the prefix's keys: on Redis Cluster, the master of the tag's slot,
  // looked at again whenever the client refreshes its map of the slots (every
  // few seconds), since a failover there swaps masters without a reconnect.
  let redisRunId: string | null = null;
  const checkServer = () => {
    void redis
      .eval(SERVER_RUN_ID, 1, `${prefix}:server`)
      .then(async (reply) => {
        const runId = typeof reply === 'string' ? reply : null;
        if (redisRunId && runId && runId !== redisRunId) {
          redisRunId = runId;
          log.warn({ module: 'limiter' }, 'redis is another server now: the limiter waits one window before sending');
          await limiter.afterReconnect();
        }
        redisRunId = runId ?? redisRunId;
      })
      .catch((err: Error) => log.warn({ module: 'limiter', err }, 'could not tell which redis server answers'));
  };
  redis.on('ready', checkServer);
  redis.on('refresh', checkServer);
  const queueOutages = outageLog('redis (queues)');
  watchOutages(queueRedis, queueOutages, 'ready');
  closers.push(() => redis.quit().catch(() => redis.disconnect()));
  closers.push(() => queueRedis.quit().catch(() => queueRedis.disconnect()));

  const cipher = createTokenCipher(config.TOKEN_ENCRYPTION_KEY, config.TOKEN_ENCRYPTION_KEY_PREVIOUS);
  const users = createUsersRepo(db);
  const events = createEventsRepo(db);
  const documents = createDocumentsRepo(db);
  const series = createSeriesRepo(db);
  const backfill = createBackfillRepo(db);
  const admin = createAdminRepo(db);
  const partnerWebhooks = createPartnerWebhooksRepo(db);
  const metrics = createMetrics();
  const usage = createUsageLog(redis, prefix);
  const limiter = createLimiter(redis, {
    app: config.OURA_APP_RATE_LIMIT,
    token: config.OURA_USER_RATE_LIMIT ?? null,
    prefix,
    floors: config.BUDGET_FLOORS,
  });
  const oura = createOuraClient({
    apiBaseUrl: config.OURA_API_BASE_URL,
    tokenUrl: config.OURA_TOKEN_URL,
    clientId: config.OURA_CLIENT_ID,
    clientSecret: config.OURA_CLIENT_SECRET,
    limiter,
    log,
    onResponse: ({ route, status, tier, purpose }) => {
      metrics.ouraRequests.inc({ purpose, route, status: String(status), tier: tier ?? '' });
      usage.record(`requests:${purpose}`);
      if (status === 429) metrics.rateLimited.inc({ tier: tier ?? 'application' });
    },
    onPermit: ({ waitedMs, lane }) => metrics.limiterWait.observe({ lane }, waitedMs / 1000),
  });
  const tokens = createTokenService({ users, cipher, oura, redis, log, prefix, metrics });
  const subscriptions = createSubscriptionsClient(oura);
  const queue = createEventQueue(queueRedis, prefix, { attempts: config.JOB_ATTEMPTS, backoffMs: config.JOB_BACKOFF_MS });
  watchOutages(queue, queueOutages);
  closers.push(() => queue.close());
  const intakeQueue = createIntakeQueue(queueRedis, prefix);
  watchOutages(intakeQueue, queueOutages);
  closers.push(() => intakeQueue.close());
  const backfillQueue = createBackfillQueue(queueRedis, prefix);
  watchOutages(backfillQueue, queueOutages);
  closers.push(() => backfillQueue.close());
  const maintenanceQueue = createMaintenanceQueue(queueRedis, prefix);
  watchOutages(maintenanceQueue, queueOutages);
  closers.push(() => maintenanceQueue.close());
  const refreshQueues = Object.fromEntries(
    REFRESH_KINDS.map((kind) => {
      const q = createRefreshQueue(queueRedis, prefix, kind);
      watchOutages(q, queueOutages);
      closers.push(() => q.close());
      return [kind, q];
    }),
  ) as RefreshQueues;
  registerCollectors(metrics, {
    queues: { intake: intakeQueue, events: queue, backfill: backfillQueue, maintenance: maintenanceQueue, ...refreshQueues },
    backfillProgress: () => backfill.all(),
    lastWebhookAt: () => events.lastReceivedAt(),
    budgetBacklog: () => budgetBacklog({ config, users, events }),
    usersByStatus: () => users.countByStatus(),
    partnerWebhooks: () => partnerWebhooks.stats(),
    readiness: () => readiness(),
    settings: { freshnessTargetS: config.FRESHNESS_TARGET_S, budgetPerS: config.OURA_APP_RATE_LIMIT.limit / config.OURA_APP_RATE_LIMIT.windowS },
  });

  const workerOutages = outageLog('redis (workers)');
  /** A separate connection for each BullMQ worker (blocking commands). */
  function workerConnection(): RedisClient {
    const c = connect({ ...redisOpts, maxRetriesPerRequest: null });
    watchOutages(c, workerOutages, 'ready');
    closers.push(() => c.quit().catch(() => c.disconnect()));
    return c;
  }

  async function readiness(): Promise<Record<string, boolean>> {
    const within = <T>(p: Promise<T>) => withTimeout(p, 2000, 'readiness check');
    const [postgres, redisOk, migrations] = await Promise.all([
      within(pool.query('select 1')).then(() => true, () => false),
      within(redis.ping()).then((r) => r === 'PONG', () => false),
      within(migrationsApplied(pool)).catch(() => false),
    ]);
    return { postgres, redis: redisOk, migrations };
  }

  return {
    config,
    log,
    prefix,
    pool,
    db,
    redis,
    queueRedis,
    cipher,
    users,
    events,
    documents,
    series,
    backfill,
    admin,
    partnerWebhooks,
    metrics,
    limiter,
    oura,
    subscriptions,
    tokens,
    queue,
    intakeQueue,
    backfillQueue,
    maintenanceQueue,
    refreshQueues,
    usage,
    workerConnection,
    /** Where BullMQ workers report their errors (their connections'): one line per outage. */
    workerOutages,
    readiness,
    /** Key for signing OAuth state, derived so it differs from the encryption key itself. */
    stateSecret: createHmac('sha256', Buffer.from(config.TOKEN_ENCRYPTION_KEY, 'base64')).update('oauth-state').digest('hex'),
    async close(): Promise<void> {
      for (const close of closers.reverse()) await close().catch(() => {});
    },
  };
}
export type Deps = ReturnType<typeof createDeps>;
