import { createHmac, randomBytes } from 'node:crypto';
import type { Delivery, SimState, WebhookEvent } from './state.js';
import { utcDateTime } from './time.js';

/**
 * Oura's webhook recipe: `x-oura-signature` is the upper-case hex
 * HMAC-SHA256 of `timestamp + body` keyed with the client secret.
 */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(timestamp + body).digest('hex').toUpperCase();
}

const TIMEOUT_MS = 5000;

/** The URL the simulator actually calls for a registered callback URL. */
export function rewriteCallback(url: string, rules: ReadonlyArray<{ from: string; to: string }>): string {
  const rule = rules.find((r) => url.startsWith(r.from));
  return rule ? rule.to + url.slice(rule.from.length) : url;
}

/**
 * The one-time check Oura makes before a subscription is accepted:
 * `GET <callback_url>?verification_token=…&challenge=…` must answer 200 with
 * `{"challenge": <same>}`.
 */
export async function verifyCallback(
  callbackUrl: string,
  token: string,
  rules: ReadonlyArray<{ from: string; to: string }> = [],
): Promise<{ ok: true } | { ok: false; reason: string }> {
  let url: URL;
  try {
    url = new URL(rewriteCallback(callbackUrl, rules));
  } catch {
    return { ok: false, reason: 'callback_url is not a valid URL' };
  }
  const challenge = randomBytes(16).toString('hex');
  url.searchParams.set('verification_token', token);
  url.searchParams.set('challenge', challenge);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    const text = await res.text();
    if (res.status !== 200) return { ok: false, reason: `verification request answered ${res.status}` };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { ok: false, reason: 'verification response is not JSON' };
    }
    if ((body as { challenge?: unknown } | null)?.challenge !== challenge) {
      return { ok: false, reason: 'verification response did not echo the challenge' };
    }
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `verification request failed: ${(err as Error).message}` };
  }
}

export function createWebhookSender(state: SimState) {
  /** POSTs one signed event; a 410 answer cancels the subscription, as at Oura. */
  async function deliver(callbackUrl: string, event: WebhookEvent, subscriptionId?: string): Promise<Delivery> {
    const body = JSON.stringify({
      event_type: event.event_type,
      data_type: event.data_type,
      object_id: event.object_id,
      event_time: event.event_time,
      user_id: event.user_id,
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = signWebhook(state.config.clientSecret, timestamp, body);
    const delivery: Delivery = { t: Date.now(), callback_url: callbackUrl, status: null, event, signature };
    try {
      const res = await fetch(rewriteCallback(callbackUrl, state.config.callbackRewrite), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-oura-timestamp': timestamp,
          'x-oura-signature': signature,
        },
        body,
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      await res.arrayBuffer().catch(() => undefined);
      delivery.status = res.status;
      if (res.status === 410 && subscriptionId) state.subscriptions.delete(subscriptionId);
    } catch (err) {
      delivery.error = (err as Error).message;
    }
    state.deliveries.push(delivery);
    if (state.deliveries.length > 10_000) state.deliveries.shift();
    return delivery;
  }

  return {
    deliver,

    /** Delivers an event to every live subscription for its (event_type, data_type). */
    async notify(e: Omit<WebhookEvent, 'event_time'> & { event_time?: string }): Promise<Delivery[]> {
      const event: WebhookEvent = { ...e, event_time: e.event_time ?? utcDateTime(Date.now()) };
      const now = Date.now();
      const targets = [...state.subscriptions.values()].filter(
        (s) => s.event_type === event.event_type && s.data_type === event.data_type && Date.parse(s.expiration_time) > now,
      );
      return Promise.all(targets.map((s) => deliver(s.callback_url, event, s.id)));
    },
  };
}

export type WebhookSender = ReturnType<typeof createWebhookSender>;
