import { z } from 'zod';
import { OuraApiError, type OuraClient } from './client.js';
import { DOCUMENT_TYPES, documentTypes, WEBHOOK_OPERATIONS } from './registry.js';

/** Oura's webhook subscription routes (tag "Webhook Subscription Routes"), authenticated as the application. */
const BASE = '/v2/webhook/subscription';

/** WebhookSubscriptionModel: what Oura answers for a subscription. */
export const Subscription = z.looseObject({
  id: z.string().min(1),
  callback_url: z.string(),
  event_type: z.string(),
  data_type: z.string(),
  expiration_time: z.string(),
});
export type Subscription = z.infer<typeof Subscription>;

export interface NewSubscription {
  callbackUrl: string;
  verificationToken: string;
  eventType: string;
  dataType: string;
}

/** Every (event_type, data_type) we want a subscription for: document types with webhook coverage × create/update/delete. */
export function wantedSubscriptions(): Array<{ event_type: string; data_type: string }> {
  return DOCUMENT_TYPES.filter((t) => documentTypes[t].webhook).flatMap((data_type) =>
    WEBHOOK_OPERATIONS.map((event_type) => ({ event_type, data_type })),
  );
}

export function createSubscriptionsClient(oura: Pick<OuraClient, 'appRequest'>) {
  function parse<T>(route: string, schema: z.ZodType<T>, json: unknown): T {
    const r = schema.safeParse(json);
    if (!r.success) throw new OuraApiError(`${route}: unexpected response from Oura`, 502, true, { code: 'bad_response' });
    return r.data;
  }
  const one = (id: string) => `${BASE}/${encodeURIComponent(id)}`;

  return {
    async list(): Promise<Subscription[]> {
      const { json } = await oura.appRequest('webhook/subscription list', 'GET', BASE);
      return parse('webhook/subscription list', z.array(Subscription), json);
    },

    async get(id: string): Promise<Subscription> {
      const { json } = await oura.appRequest('webhook/subscription get', 'GET', one(id));
      return parse('webhook/subscription get', Subscription, json);
    },

    /** Oura verifies the callback (GET with our token and a challenge) before it answers 201. */
    async create(s: NewSubscription): Promise<Subscription> {
      const { json } = await oura.appRequest('webhook/subscription create', 'POST', BASE, {
        callback_url: s.callbackUrl,
        verification_token: s.verificationToken,
        event_type: s.eventType,
        data_type: s.dataType,
      });
      return parse('webhook/subscription create', Subscription, json);
    },

    /** A changed callback or token is verified again by Oura. */
    async update(id: string, s: Pick<NewSubscription, 'verificationToken'> & Partial<NewSubscription>): Promise<Subscription> {
      const { json } = await oura.appRequest('webhook/subscription update', 'PUT', one(id), {
        verification_token: s.verificationToken,
        ...(s.callbackUrl === undefined ? {} : { callback_url: s.callbackUrl }),
        ...(s.eventType === undefined ? {} : { event_type: s.eventType }),
        ...(s.dataType === undefined ? {} : { data_type: s.dataType }),
      });
      return parse('webhook/subscription update', Subscription, json);
    },

    async renew(id: string): Promise<Subscription> {
      const { json } = await oura.appRequest('webhook/subscription renew', 'PUT', `${BASE}/renew/${encodeURIComponent(id)}`);
      return parse('webhook/subscription renew', Subscription, json);
    },

    async remove(id: string): Promise<void> {
      await oura.appRequest('webhook/subscription delete', 'DELETE', one(id));
    },
  };
}
export type SubscriptionsClient = ReturnType<typeof createSubscriptionsClient>;

/** One subscription as the sync reports it. */
export interface SubscriptionRef {
  id: string;
  event_type: string;
  data_type: string;
  callback_url: string;
  expiration_time: string;
}

export interface SyncResult {
  created: SubscriptionRef[];
  renewed: SubscriptionRef[];
  /** Had another callback URL; now points at ours (take-over only). */
  replaced: SubscriptionRef[];
  unchanged: SubscriptionRef[];
  /** Duplicates for a pair that already had one. */
  removed: SubscriptionRef[];
  /**
   * Calling back another URL (another deployment sharing this Oura app, a
   * staging one say), so not ours to change: untouched, unless take-over.
   */
  left: SubscriptionRef[];
  failed: Array<{ event_type: string; data_type: string; error: string }>;
}

export interface SyncOptions {
  callbackUrl: string;
  verificationToken: string;
  /** Renew what expires within this long; default 7 days. */
  renewWithinMs?: number;
  /** Pairs handled at once; default 4. */
  concurrency?: number;
  now?: () => number;
  /** Called after each (event_type, data_type) pair. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Also take over subscriptions that call back another URL: repoint one per
   * pair at ours and remove the rest. Without it they are left alone (and
   * reported), since another deployment of the same Oura app relies on them.
   */
  takeOver?: boolean;
}

export const RENEW_WITHIN_MS = 7 * 24 * 3600 * 1000;

const ref = (s: Subscription): SubscriptionRef => ({
  id: s.id,
  event_type: s.event_type,
  data_type: s.data_type,
  callback_url: s.callback_url,
  expiration_time: s.expiration_time,
});

const expiresAt = (s: Subscription): number => {
  const t = Date.parse(s.expiration_time);
  return Number.isNaN(t) ? -Infinity : t;
};

/**
 * Ensures exactly one subscription per wanted (event_type, data_type) calling
 * back `callbackUrl` with our verification token. Idempotent: a second run
 * changes nothing. Per pair: duplicates of ours are removed (keeping the one
 * that lives longest), and one whose `expiration_time` falls within
 * `renewWithinMs` is renewed. Subscriptions calling back another URL are left
 * alone, unless `takeOver`: then one is pointed at ours when we have none,
 * and the rest are removed. A pair that fails is reported and the others
 * still run; only a failure to list stops the sync.
 */
export async function syncSubscriptions(client: SubscriptionsClient, opts: SyncOptions): Promise<SyncResult> {
  const now = opts.now ?? Date.now;
  const renewWithinMs = opts.renewWithinMs ?? RENEW_WITHIN_MS;
  const result: SyncResult = { created: [], renewed: [], replaced: [], unchanged: [], removed: [], left: [], failed: [] };
  const existing = await client.list();
  const wanted = wantedSubscriptions();
  const ours = { callbackUrl: opts.callbackUrl, verificationToken: opts.verificationToken };

  async function syncPair(pair: { event_type: string; data_type: string }): Promise<void> {
    const ofPair = existing.filter((s) => s.event_type === pair.event_type && s.data_type === pair.data_type);
    if (!opts.takeOver) result.left.push(...ofPair.filter((s) => s.callback_url !== opts.callbackUrl).map(ref));
    // Ours first, then by how long they live: the first is kept, the rest removed.
    const matching = ofPair
      .filter((s) => opts.takeOver || s.callback_url === opts.callbackUrl)
      .sort((a, b) => Number(b.callback_url === opts.callbackUrl) - Number(a.callback_url === opts.callbackUrl) || expiresAt(b) - expiresAt(a));
    const create = () => client.create({ ...ours, eventType: pair.event_type, dataType: pair.data_type });
    let keep = matching[0];
    if (!keep) {
      result.created.push(ref(await create()));
      return;
    }
    for (const extra of matching.slice(1)) {
      try {
        await client.remove(extra.id);
      } catch (err) {
        if (!(err instanceof OuraApiError && err.status === 403)) throw err; // already gone
      }
      result.removed.push(ref(extra));
    }
    let changed = false;
    if (keep.callback_url !== opts.callbackUrl) {
      try {
        keep = await client.update(keep.id, { ...ours, eventType: pair.event_type, dataType: pair.data_type });
        result.replaced.push(ref(keep));
      } catch (err) {
        // Gone since we listed it (Oura answers 403 for an unknown id): make a new one.
        if (!(err instanceof OuraApiError && err.status === 403)) throw err;
        result.created.push(ref(await create()));
        return;
      }
      changed = true;
    }
    if (expiresAt(keep) - now() < renewWithinMs) {
      keep = await client.renew(keep.id);
      result.renewed.push(ref(keep));
      changed = true;
    }
    if (!changed) result.unchanged.push(ref(keep));
  }

  let next = 0;
  let done = 0;
  const lanes = Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, async () => {
    for (let i = next++; i < wanted.length; i = next++) {
      const pair = wanted[i]!;
      try {
        await syncPair(pair);
      } catch (err) {
        result.failed.push({ ...pair, error: (err as Error).message.slice(0, 300) });
      }
      opts.onProgress?.(++done, wanted.length);
    }
  });
  await Promise.all(lanes);
  const order = (a: { data_type: string; event_type: string }, b: { data_type: string; event_type: string }) =>
    a.data_type.localeCompare(b.data_type) || a.event_type.localeCompare(b.event_type);
  for (const list of Object.values(result)) (list as Array<{ data_type: string; event_type: string }>).sort(order);
  return result;
}

/** What the application's subscriptions follow from. */
export interface AppSubscriptionConfig {
  PUBLIC_BASE_URL: string;
  OURA_WEBHOOK_VERIFICATION_TOKEN: string;
}

/** Where Oura calls us. */
export const callbackUrl = (config: Pick<AppSubscriptionConfig, 'PUBLIC_BASE_URL'>): string => `${config.PUBLIC_BASE_URL}/webhooks/oura`;

/** One subscription per ingested (event_type, data_type) calling PUBLIC_BASE_URL/webhooks/oura; see syncSubscriptions. */
export function syncAppSubscriptions(
  deps: { subscriptions: SubscriptionsClient; config: AppSubscriptionConfig },
  input: { onProgress?: (done: number, total: number) => void; takeOver?: boolean } = {},
): Promise<SyncResult> {
  return syncSubscriptions(deps.subscriptions, {
    callbackUrl: callbackUrl(deps.config),
    verificationToken: deps.config.OURA_WEBHOOK_VERIFICATION_TOKEN,
    onProgress: input.onProgress,
    takeOver: input.takeOver,
  });
}
