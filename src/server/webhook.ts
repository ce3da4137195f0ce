import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { safeEqual, verifyWebhookSignature } from '../crypto.js';
import type { EventsRepo } from '../db/events.js';
import type { UsersRepo } from '../db/users.js';
import { isDocumentType } from '../oura/registry.js';
import type { IntakeQueue } from '../queues/index.js';
import { createDeliveryBatcher } from './delivery-batcher.js';
import { AppError, formatZodError } from '../errors/catalog.js';
import { createWebhookActivity } from './webhook-activity.js';

export const WEBHOOK_BODY_LIMIT = 64 * 1024;
const FUTURE_SKEW_S = 300;

/** A string Postgres can store: text holds no NUL character. */
const text = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !s.includes('\u0000'), { message: 'must not contain NUL characters' });

/** What Oura posts. Unknown data types are valid here: they are acknowledged and ignored. */
export const WebhookBody = z.object({
  event_type: z.enum(['create', 'update', 'delete']),
  data_type: text(64),
  object_id: text(256),
  /** Checked as a date-time (and normalized) by the handler, which parses it once. */
  event_time: z.string(),
  user_id: text(256),
});

/** An ISO 8601 date-time, as Oura writes it (`2023-01-01T08:00:00+00:00`); the zone is optional. */
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/;
/** Years 1 to 9999 in UTC: what timestamptz and the dedupe key's ISO form (four-digit years) both hold. */
const MIN_EVENT_TIME = Date.parse('0001-01-01T00:00:00Z');
const MAX_EVENT_TIME = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * Milliseconds since the epoch, or null. A time without a zone is read as
 * UTC, whatever the host's time zone, so the dedupe key does not depend on it.
 */
export function parseEventTime(raw: string): number | null {
  const m = ISO_DATE_TIME.exec(raw);
  if (!m) return null;
  const time = Date.parse(m[1] ? raw : `${raw}Z`);
  return time >= MIN_EVENT_TIME && time <= MAX_EVENT_TIME ? time : null;
}

export interface WebhookDeps {
  clientSecret: string;
  verificationToken: string;
  maxAgeS: number;
  events: EventsRepo;
  /** Where each user's last_webhook_at is kept. */
  users: Pick<UsersRepo, 'touchWebhooks'>;
  intake: IntakeQueue;
  /** Bounds how long queueing may wait on Redis before its deliveries are left to the sweeper. */
  queueTimeoutMs?: number;
  onDelivery?: (outcome: string) => void;
  /** Recorded deliveries this api could not queue; the sweeper admits them. */
  onUnqueued?: (deliveries: number) => void;
}

/**
 * What a delivery gets back (serialized by a compiled schema): `accepted`,
 * or `ignored` for a data type we do not fetch, and the delivery's id in
 * the inbox, which becomes the event's id unless it repeats a recorded one.
 */
const ACK_SCHEMA = {
  type: 'object',
  properties: { status: { type: 'string' }, delivery_id: { type: 'integer' } },
  required: ['status', 'delivery_id'],
} as const;

function parseTimestamp(raw: string): number | null {
  if (!/^\d{1,16}$/.test(raw)) return null;
  const n = Number(raw);
  // Seconds, as Oura documents; tolerate milliseconds.
  return n > 1e11 ? Math.floor(n / 1000) : n;
}

export async function webhookRoutes(app: FastifyInstance, deps: WebhookDeps) {
  const batcher = createDeliveryBatcher({
    events: deps.events,
    intake: deps.intake,
    queueTimeoutMs: deps.queueTimeoutMs ?? 3000,
    onError: (stage, err) =>
      stage === 'database'
        ? app.log.error({ stage, err }, 'could not record webhook deliveries; answered 503')
        : app.log.error({ stage, err }, 'could not queue recorded webhook deliveries; the sweeper will'),
    onUnqueued: deps.onUnqueued,
  });
  const activity = createWebhookActivity(deps.users, app.log);
  app.addHook('onClose', async () => {
    const left = await batcher.drain();
    if (left > 0) app.log.warn({ deliveries: left }, 'recorded webhook deliveries not queued at shutdown; the sweeper will');
    await activity.close();
  });
  const refuse = (code: Parameters<typeof deps.onDelivery & {}>[0], err: AppError) => {
    deps.onDelivery?.(`refused_${code}`);
    app.log.warn({ code: err.code, reason: code }, 'webhook delivery refused');
    return err;
  };

  // Verification of a subscription: Oura GETs the callback with our token and a challenge.
  app.get('/webhooks/oura', async (req) => {
    const q = req.query as Record<string, unknown>;
    const token = typeof q.verification_token === 'string' ? q.verification_token : '';
    const challenge = typeof q.challenge === 'string' ? q.challenge : null;
    if (!token || !safeEqual(token, deps.verificationToken)) {
      throw new AppError('invalid_verification_token', 'verification_token does not match');
    }
    if (challenge === null) throw new AppError('bad_request', 'challenge is required');
    return { challenge };
  });

  // The signature covers the raw bytes, so this route parses nothing itself.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: WEBHOOK_BODY_LIMIT }, (_req, body, done) => {
      done(null, body);
    });

    // Oura sends bursts: per-delivery lines are debug (counts live in the metrics); refusals still warn.
    scope.post('/webhooks/oura', { bodyLimit: WEBHOOK_BODY_LIMIT, logLevel: 'warn', schema: { response: { 200: ACK_SCHEMA } } }, async (req, reply) => {
      const signature = req.headers['x-oura-signature'];
      const timestampRaw = req.headers['x-oura-timestamp'];
      if (typeof signature !== 'string' || typeof timestampRaw !== 'string' || !signature || !timestampRaw) {
        throw refuse('signature', new AppError('missing_signature', 'x-oura-signature and x-oura-timestamp are required'));
      }
      const ts = parseTimestamp(timestampRaw.trim());
      if (ts === null) throw refuse('timestamp', new AppError('invalid_timestamp', 'x-oura-timestamp must be unix seconds'));
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      if (!verifyWebhookSignature(deps.clientSecret, timestampRaw, raw, signature.trim())) {
        throw refuse('signature', new AppError('invalid_signature', 'signature does not match'));
      }
      const age = Math.floor(Date.now() / 1000) - ts;
      if (age > deps.maxAgeS || age < -FUTURE_SKEW_S) {
        throw refuse('timestamp', new AppError('stale_timestamp', `timestamp is outside the accepted window (${deps.maxAgeS} s old, ${FUTURE_SKEW_S} s ahead)`));
      }
      let json: unknown;
      try {
        json = JSON.parse(raw.toString('utf8'));
      } catch {
        throw refuse('body', new AppError('invalid_body', 'body is not valid JSON'));
      }
      const parsed = WebhookBody.safeParse(json);
      if (!parsed.success) throw refuse('body', new AppError('invalid_body', formatZodError(parsed.error)));
      const { data } = parsed;
      const time = parseEventTime(data.event_time);
      if (time === null) throw refuse('body', new AppError('invalid_body', 'event_time: must be an ISO 8601 date-time between the years 1 and 9999'));
      const event = { event_type: data.event_type, data_type: data.data_type, object_id: data.object_id, event_time: new Date(time).toISOString(), user_id: data.user_id };

      const supported = isDocumentType(event.data_type);
      let deliveryId;
      try {
        deliveryId = await batcher.submit(event, supported);
      } catch (err) {
        const e = err instanceof AppError ? err : new AppError('database_unavailable', 'event store unavailable; retry later');
        throw refuse('unavailable', e);
      }
      // Whether it repeats a recorded event is the intake worker's to find (counted there as `duplicate`).
      const outcome = supported ? 'accepted' : 'ignored';
      if (supported) activity.note(event.user_id);
      deps.onDelivery?.(outcome);
      req.log.debug({ deliveryId, dataType: event.data_type, outcome }, 'webhook received');
      return reply.code(200).send({ status: outcome, delivery_id: deliveryId });
    });
  });
}
