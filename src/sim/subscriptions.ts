import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { WEBHOOK_DATA_TYPES, WEBHOOK_OPERATIONS } from '../oura/registry.js';
import { validationError, zodIssues } from './http.js';
import type { SimState, Subscription } from './state.js';
import { verifyCallback } from './webhooks.js';

/**
 * /v2/webhook/subscription*, authenticated with x-client-id/x-client-secret.
 * Creating a subscription, or changing its URL or token, runs Oura's
 * verification round-trip against the callback first.
 */

const EventType = z.enum(WEBHOOK_OPERATIONS);
const DataType = z.string().refine((s) => WEBHOOK_DATA_TYPES.includes(s), {
  message: `Input should be one of: ${WEBHOOK_DATA_TYPES.join(', ')}`,
});

const CreateBody = z.object({
  callback_url: z.string().min(1),
  verification_token: z.string(),
  event_type: EventType,
  data_type: DataType,
});

const UpdateBody = z.object({
  verification_token: z.string(),
  callback_url: z.string().min(1).nullish(),
  event_type: EventType.nullish(),
  data_type: DataType.nullish(),
});

const NOT_FOUND = { detail: 'Webhook with specified id does not exist.' };

/** The subscription as the API shows it (the verification token stays private). */
export const publicSubscription = (s: Subscription) => ({
  id: s.id,
  callback_url: s.callback_url,
  event_type: s.event_type,
  data_type: s.data_type,
  expiration_time: s.expiration_time,
});

export function registerSubscriptionRoutes(app: FastifyInstance, state: SimState): void {
  const base = '/v2/webhook/subscription';
  const ttlMs = (): number => state.config.subscriptionTtlS * 1000;
  const unverified = (reply: FastifyReply, reason: string) =>
    reply.code(422).send(validationError([{ loc: ['body', 'callback_url'], msg: `Webhook verification failed: ${reason}`, type: 'verification_failed' }]));

  app.register(async (scope) => {
    scope.addHook('preHandler', async (req, reply) => {
      const id = req.headers['x-client-id'];
      const secret = req.headers['x-client-secret'];
      if (id !== state.config.clientId || secret !== state.config.clientSecret) {
        return reply.code(401).send({ detail: 'Invalid or missing x-client-id / x-client-secret' });
      }
    });

    const owned = (id: string): Subscription | undefined => {
      const s = state.subscriptions.get(id);
      return s && s.clientId === state.config.clientId ? s : undefined;
    };

    scope.get(base, async () => [...state.subscriptions.values()].filter((s) => s.clientId === state.config.clientId).map(publicSubscription));

    scope.post(base, async (req, reply) => {
      const parsed = CreateBody.safeParse(req.body);
      if (!parsed.success) return reply.code(422).send(validationError(zodIssues('body', parsed.error)));
      const b = parsed.data;
      const verified = await verifyCallback(b.callback_url, b.verification_token, state.config.callbackRewrite);
      if (!verified.ok) return unverified(reply, verified.reason);
      const sub: Subscription = {
        id: randomUUID(),
        callback_url: b.callback_url,
        event_type: b.event_type,
        data_type: b.data_type,
        expiration_time: new Date(Date.now() + ttlMs()).toISOString(),
        verification_token: b.verification_token,
        clientId: state.config.clientId,
      };
      state.subscriptions.set(sub.id, sub);
      return reply.code(201).send(publicSubscription(sub));
    });

    scope.get(`${base}/:id`, async (req, reply) => {
      const s = owned((req.params as { id: string }).id);
      return s ? publicSubscription(s) : reply.code(403).send(NOT_FOUND);
    });

    scope.put(`${base}/:id`, async (req, reply) => {
      const s = owned((req.params as { id: string }).id);
      if (!s) return reply.code(403).send(NOT_FOUND);
      const parsed = UpdateBody.safeParse(req.body);
      if (!parsed.success) return reply.code(422).send(validationError(zodIssues('body', parsed.error)));
      const b = parsed.data;
      const callbackUrl = b.callback_url ?? s.callback_url;
      if (callbackUrl !== s.callback_url || b.verification_token !== s.verification_token) {
        const verified = await verifyCallback(callbackUrl, b.verification_token, state.config.callbackRewrite);
        if (!verified.ok) return unverified(reply, verified.reason);
      }
      s.callback_url = callbackUrl;
      s.verification_token = b.verification_token;
      s.event_type = b.event_type ?? s.event_type;
      s.data_type = b.data_type ?? s.data_type;
      return publicSubscription(s);
    });

    scope.delete(`${base}/:id`, async (req, reply) => {
      const s = owned((req.params as { id: string }).id);
      if (!s) return reply.code(403).send(NOT_FOUND);
      state.subscriptions.delete(s.id);
      return reply.code(204).send();
    });

    scope.put(`${base}/renew/:id`, async (req, reply) => {
      const s = owned((req.params as { id: string }).id);
      if (!s) return reply.code(403).send(NOT_FOUND);
      const from = Math.max(Date.now(), Date.parse(s.expiration_time));
      s.expiration_time = new Date(from + ttlMs()).toISOString();
      return publicSubscription(s);
    });
  });
}
