import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Deps } from '../deps.js';
import { migrationsApplied } from '../db/migrate.js';
import { adminRoutes } from './admin.js';
import { handleError, notFound } from '../errors/http.js';
import { oauthRoutes } from './oauth.js';
import { queuesDashboard } from './queues-dashboard.js';
import { readinessReport } from './readiness.js';
import { webhookRoutes } from './webhook.js';
import { onUserConnected } from '../queues/index.js';
import { pathOnly } from '../logger.js';
import { requestLoggerFactory } from './request-logger.js';

/**
 * Wires the HTTP API without listening. `main` owns listen and shutdown;
 * tests call `app.inject` or listen on port 0.
 */
export async function buildApp(deps: Deps, opts: { trustProxy?: boolean } = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log.child({ module: 'api' }) as FastifyServerOptions['loggerInstance'],
    trustProxy: opts.trustProxy ?? true,
    requestIdHeader: 'x-request-id',
    genReqId: () => crypto.randomUUID(),
    childLoggerFactory: requestLoggerFactory as unknown as FastifyServerOptions['childLoggerFactory'],
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((req, reply) => notFound(req, reply, pathOnly(req.url)));

  await app.register(rateLimit, { global: false, redis: deps.redis, nameSpace: `${deps.prefix}:http-rl:` });

  app.get('/healthz', async () => ({ status: 'ok' }));
  // Prometheus text format. No health data or secrets: counts, durations and states only.
  app.get('/metrics', async (_req, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
  app.get('/readyz', async (_req, reply) => {
    const { statusCode, body } = await readinessReport(deps.readiness);
    return reply.code(statusCode).send(body);
  });

  await app.register(webhookRoutes, {
    clientSecret: deps.config.OURA_CLIENT_SECRET,
    verificationToken: deps.config.OURA_WEBHOOK_VERIFICATION_TOKEN,
    maxAgeS: deps.config.WEBHOOK_MAX_AGE_S,
    events: deps.events,
    users: deps.users,
    intake: deps.intakeQueue,
    onDelivery: (outcome) => deps.metrics.deliveries.inc({ outcome }),
    onUnqueued: (events) => deps.metrics.unqueued.inc(events),
  });
  await app.register(oauthRoutes, {
    clientId: deps.config.OURA_CLIENT_ID,
    authorizeUrl: deps.config.OURA_AUTHORIZE_URL,
    publicBaseUrl: deps.config.PUBLIC_BASE_URL,
    stateSecret: deps.stateSecret,
    redis: deps.redis,
    keyPrefix: deps.prefix,
    oura: deps.oura,
    users: deps.users,
    tokens: deps.tokens,
    onConnected: (userId) => onUserConnected(deps, userId),
  });
  await app.register(adminRoutes, { prefix: '/admin', adminToken: deps.config.ADMIN_TOKEN, readonly: deps.config.ADMIN_READONLY, deps });
  await app.register(queuesDashboard, {
    adminToken: deps.config.ADMIN_TOKEN,
    readonly: deps.config.ADMIN_READONLY,
    queues: [deps.intakeQueue, deps.queue, deps.backfillQueue, deps.refreshQueues.timeseries, deps.refreshQueues.reconcile, deps.maintenanceQueue],
  });
  return app;
}

export { migrationsApplied };
