import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { DOCUMENT_TYPES, isDocumentType, type DocumentType } from '../oura/registry.js';
import { publicSubscription } from './subscriptions.js';
import type { SimState, SimUser } from './state.js';
import { utcDateTime } from './time.js';
import type { WebhookSender } from './webhooks.js';

/**
 * /_sim: the control API for tests, the demo and humans. No auth, not rate
 * limited, not in the request log.
 */

const Day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'expected YYYY-MM-DD');
const Fields = z.record(z.string(), z.unknown());
const LimitBody = z.object({ limit: z.number().int().min(0), windowS: z.number().int().min(1) }).nullable();

const NewUserBody = z.object({
  id: z.string().min(1).optional(),
  historyDays: z.number().int().min(0).max(3650).optional(),
  email: z.string().optional(),
  forbidden: z.boolean().optional(),
  offset: z.string().regex(/^[+-]\d{2}:\d{2}$/, 'expected an offset like +02:00').optional(),
});
const PatchUserBody = z.object({ forbidden: z.boolean().optional(), email: z.string().optional() });
const NewDocBody = z.object({ day: Day.optional(), fields: Fields.optional(), notify: z.boolean().optional() });
const PatchDocBody = z.object({ fields: Fields.optional(), notify: z.boolean().optional() });
const EventBody = z.object({
  event_type: z.string().min(1),
  data_type: z.string().min(1),
  object_id: z.string().min(1),
  user_id: z.string().min(1),
  event_time: z.string().optional(),
  callback_url: z.url().optional(),
});
const ConfigBody = z.object({
  appLimit: LimitBody.optional(),
  tokenLimit: LimitBody.optional(),
  pageSize: z.number().int().min(1).optional(),
  timeSeriesPageSize: z.number().int().min(1).optional(),
  accessTokenTtlS: z.number().int().min(1).optional(),
  subscriptionTtlS: z.number().int().min(1).optional(),
  defaultHistoryDays: z.number().int().min(0).optional(),
});
const FaultBody = z.object({
  status: z
    .union([z.literal(500), z.literal(502), z.literal(503), z.literal(401), z.literal(403), z.literal(404), z.literal(426), z.literal(429)])
    .optional(),
  /** Without `status`: answer as usual, but hold the answer this long after computing it (a slow read). */
  delayMs: z.number().int().min(1).max(60_000).optional(),
  count: z.number().int().min(1).default(1),
  /** 429 only: the tier named in X-RateLimit-Tier and the Retry-After seconds. */
  tier: z.enum(['application', 'token']).optional(),
  retryAfterS: z.number().int().min(0).optional(),
  path: z.string().optional(),
  userId: z.string().optional(),
}).refine((f) => (f.status === undefined) !== (f.delayMs === undefined), 'give either status or delayMs');

type Params = Record<string, string>;

export function registerControlRoutes(app: FastifyInstance, state: SimState, webhooks: WebhookSender): void {
  const bad = (reply: FastifyReply, err: z.ZodError) =>
    reply.code(400).send({ detail: err.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ') });
  const notFound = (reply: FastifyReply, what: string) => reply.code(404).send({ detail: `${what} not found` });

  /** Resolves :id and :type, answering 404 itself when either is unknown. */
  const target = (p: Params, reply: FastifyReply): { user: SimUser; type: DocumentType } | null => {
    const user = state.users.get(p.id ?? '');
    if (!user) {
      notFound(reply, `user ${p.id}`);
      return null;
    }
    const type = p.type ?? '';
    if (!isDocumentType(type)) {
      reply.code(404).send({ detail: `unknown document type ${type}; one of ${DOCUMENT_TYPES.join(', ')}` });
      return null;
    }
    return { user, type };
  };

  const summary = (u: SimUser) => ({
    id: u.id,
    email: u.email,
    forbidden: u.forbidden,
    offset: u.offset,
    documents: Object.fromEntries(DOCUMENT_TYPES.map((t) => [t, state.docs.get(u.id)?.[t].size ?? 0])),
  });

  const configView = () => {
    const { clientSecret: _secret, callbackRewrite: _rewrite, ...rest } = state.config;
    return rest;
  };

  // ---- users and documents ----

  app.get('/_sim/users', async () => [...state.users.values()].map(summary));

  app.post('/_sim/users', async (req, reply) => {
    const b = NewUserBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    if (b.data.id && state.users.has(b.data.id)) return reply.code(409).send({ detail: `user ${b.data.id} already exists` });
    const user = state.createUser(b.data);
    return reply.code(201).send({ id: user.id });
  });

  app.get('/_sim/users/:id', async (req, reply) => {
    const user = state.users.get((req.params as Params).id ?? '');
    return user ? summary(user) : notFound(reply, 'user');
  });

  app.patch('/_sim/users/:id', async (req, reply) => {
    const user = state.users.get((req.params as Params).id ?? '');
    if (!user) return notFound(reply, 'user');
    const b = PatchUserBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    if (b.data.forbidden !== undefined) user.forbidden = b.data.forbidden;
    if (b.data.email !== undefined) user.personalInfo = { ...user.personalInfo, email: (user.email = b.data.email) };
    return summary(user);
  });

  app.post('/_sim/users/:id/expire-tokens', async (req, reply) => {
    const id = (req.params as Params).id ?? '';
    if (!state.users.has(id)) return notFound(reply, 'user');
    return { expired: state.expireTokens(id) };
  });

  app.post('/_sim/users/:id/revoke', async (req, reply) => {
    const id = (req.params as Params).id ?? '';
    if (!state.users.has(id)) return notFound(reply, 'user');
    state.revokeUser(id);
    return { revoked: true };
  });

  app.get('/_sim/users/:id/documents/:type', async (req, reply) => {
    const t = target(req.params as Params, reply);
    return t ? state.listDocs(t.user.id, t.type).map((s) => s.doc) : reply;
  });

  app.post('/_sim/users/:id/documents/:type', async (req, reply) => {
    const t = target(req.params as Params, reply);
    if (!t) return reply;
    const b = NewDocBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    const id = b.data.fields?.id;
    if (typeof id === 'string' && state.getDoc(t.user.id, t.type, id)) {
      return reply.code(409).send({ detail: `document ${id} already exists` });
    }
    const doc = state.addDoc(t.user.id, t.type, b.data.day, b.data.fields);
    if (b.data.notify) await webhooks.notify({ event_type: 'create', data_type: t.type, object_id: doc.id, user_id: t.user.id });
    return reply.code(201).send(doc);
  });

  app.patch('/_sim/users/:id/documents/:type/:docId', async (req, reply) => {
    const p = req.params as Params;
    const t = target(p, reply);
    if (!t) return reply;
    const b = PatchDocBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    const doc = state.updateDoc(t.user.id, t.type, p.docId ?? '', b.data.fields);
    if (!doc) return notFound(reply, 'document');
    if (b.data.notify) await webhooks.notify({ event_type: 'update', data_type: t.type, object_id: doc.id, user_id: t.user.id });
    return doc;
  });

  app.delete('/_sim/users/:id/documents/:type/:docId', async (req, reply) => {
    const p = req.params as Params;
    const t = target(p, reply);
    if (!t) return reply;
    const docId = p.docId ?? '';
    if (!state.deleteDoc(t.user.id, t.type, docId)) return notFound(reply, 'document');
    const notify = (req.query as Params).notify;
    if (notify === 'true' || notify === '1') {
      await webhooks.notify({ event_type: 'delete', data_type: t.type, object_id: docId, user_id: t.user.id });
    }
    return reply.code(204).send();
  });

  // ---- webhooks ----

  app.post('/_sim/events', async (req, reply) => {
    const b = EventBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    const { callback_url, ...event } = b.data;
    const deliveries = callback_url
      ? [await webhooks.deliver(callback_url, { ...event, event_time: event.event_time ?? utcDateTime(Date.now()) })]
      : await webhooks.notify(event);
    return { deliveries: deliveries.map((d) => ({ callback_url: d.callback_url, status: d.status, ...(d.error ? { error: d.error } : {}) })) };
  });

  app.get('/_sim/subscriptions', async () => [...state.subscriptions.values()].map(publicSubscription));
  app.get('/_sim/deliveries', async () => state.deliveries);
  app.delete('/_sim/deliveries', async (_req, reply) => {
    state.deliveries.length = 0;
    return reply.code(204).send();
  });

  // ---- observation ----

  app.get('/_sim/requests', async (req) => {
    const since = Number((req.query as Params).since);
    return Number.isFinite(since) ? state.requests.filter((r) => r.t >= since) : state.requests;
  });

  app.delete('/_sim/requests', async (_req, reply) => {
    state.requests.length = 0;
    return reply.code(204).send();
  });

  app.get('/_sim/stats', async () => ({
    grants: { ...state.grants },
    /** Refresh grants refused because their refresh token had been used already. */
    refreshTokensReused: state.counters.refreshTokensReused,
    requests: state.counters.requests,
    rateLimited: state.counters.rateLimited,
  }));

  // ---- behaviour ----

  app.get('/_sim/config', async () => configView());

  app.patch('/_sim/config', async (req, reply) => {
    const b = ConfigBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    const c = b.data;
    // A changed limit starts its tier with an empty window.
    if (c.appLimit !== undefined) {
      state.config.appLimit = c.appLimit;
      state.limiter.reset('application');
    }
    if (c.tokenLimit !== undefined) {
      state.config.tokenLimit = c.tokenLimit;
      state.limiter.reset('token');
    }
    for (const k of ['pageSize', 'timeSeriesPageSize', 'accessTokenTtlS', 'subscriptionTtlS', 'defaultHistoryDays'] as const) {
      const v = c[k];
      if (v !== undefined) state.config[k] = v;
    }
    return configView();
  });

  app.get('/_sim/faults', async () => state.faults);

  app.post('/_sim/faults', async (req, reply) => {
    const b = FaultBody.safeParse(req.body ?? {});
    if (!b.success) return bad(reply, b.error);
    return reply.code(201).send(state.addFault(b.data));
  });

  app.delete('/_sim/faults', async (_req, reply) => {
    state.faults.length = 0;
    return reply.code(204).send();
  });
}
