import Fastify, { type FastifyInstance } from 'fastify';
import { registerControlRoutes } from './control.js';
import { createRequestMeta, isControlPath, splitUrl } from './http.js';
import { registerOauthRoutes } from './oauth.js';
import { createSimState, type SimOptions, type SimState } from './state.js';
import { registerSubscriptionRoutes } from './subscriptions.js';
import { registerUserCollectionRoutes } from './usercollection.js';
import { createWebhookSender } from './webhooks.js';

/**
 * The Oura API v2 simulator: OAuth2, every /v2/usercollection route in the
 * registry, webhook subscriptions with verification and signed deliveries,
 * both rate-limit tiers, and a /_sim control API. All state is in memory.
 */

export type { SimOptions, SimState } from './state.js';
export type { Limit } from './ratelimit.js';
export { signWebhook } from './webhooks.js';

/** The request log keeps the latest entries only, so a long-running demo does not grow without bound. */
const LOG_CAP = 50_000;

const FAULT_BODIES: Record<number, string> = {
  401: 'Invalid or expired access token',
  403: 'Access forbidden',
  404: 'Not Found',
  426: 'Upgrade Required: the user must update the Oura app',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Wires the simulator without listening; tests may use `app.inject`. */
export function buildSimulator(opts: SimOptions): { app: FastifyInstance; state: SimState } {
  const app = Fastify({ logger: opts.logger ?? false });
  const state = createSimState(opts);
  const meta = createRequestMeta();
  const webhooks = createWebhookSender(state);

  // Oura's token endpoint speaks form encoding; an empty JSON body (renew) is no body.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Object.assign(new Error('Request body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    if (isControlPath(req.url)) return;
    const { path } = splitUrl(req.url);
    const bearer = /^Bearer\s+(\S+)/i.exec(req.headers.authorization ?? '')?.[1];
    const userId = (bearer && state.accessTokens.get(bearer)?.userId) || null;
    meta(req).userId = userId;
    const fault = state.takeFault(path, userId);
    if (fault?.delayMs) meta(req).delayMs = fault.delayMs;
    if (fault?.status === 429) {
      const retryAfterS = fault.retryAfterS ?? 1;
      const tier = fault.tier ?? 'application';
      meta(req).tier = tier;
      return reply
        .code(429)
        .headers({
          'retry-after': String(retryAfterS),
          'x-ratelimit-limit': String(tier === 'application' ? (state.config.appLimit?.limit ?? 5000) : (state.config.tokenLimit?.limit ?? 100)),
          'x-ratelimit-window': String(tier === 'application' ? (state.config.appLimit?.windowS ?? 300) : (state.config.tokenLimit?.windowS ?? 60)),
          'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + retryAfterS),
          'x-ratelimit-tier': tier,
        })
        .send({ detail: 'Request Rate Limit Exceeded.' });
    }
    if (fault?.status) return reply.code(fault.status).send({ detail: FAULT_BODIES[fault.status] ?? 'Simulated fault' });
  });

  app.addHook('onSend', async (req, reply, payload) => {
    if (isControlPath(req.url)) return payload;
    const { path, query } = splitUrl(req.url);
    const m = meta(req);
    state.requests.push({ t: Date.now(), method: req.method, path, query, status: reply.statusCode, userId: m.userId, tier: m.tier });
    if (state.requests.length > LOG_CAP) state.requests.splice(0, state.requests.length - LOG_CAP);
    state.counters.requests++;
    if (reply.statusCode === 429) state.counters.rateLimited++;
    // A slow answer: computed (and logged) now, sent later.
    if (m.delayMs) await new Promise((r) => setTimeout(r, m.delayMs));
    return payload;
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) app.log.error({ err }, 'simulator error');
    return reply.code(status).send({ detail: status >= 500 ? 'Internal Server Error' : err.message });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ detail: 'Not Found' }));

  registerOauthRoutes(app, state, meta);
  registerUserCollectionRoutes(app, state, meta);
  registerSubscriptionRoutes(app, state);
  registerControlRoutes(app, state, webhooks);

  return { app, state };
}

/** Builds and listens; port 0 picks a free port. */
export async function startSimulator(
  opts: SimOptions & { port?: number; host?: string },
): Promise<{ url: string; app: FastifyInstance; state: SimState; close(): Promise<void> }> {
  const { app, state } = buildSimulator(opts);
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ port: opts.port ?? 0, host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return { url: `http://${urlHost}:${port}`, app, state, close: () => app.close() };
}
