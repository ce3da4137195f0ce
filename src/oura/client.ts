import type { Logger } from 'pino';
import { z } from 'zod';
import { type Lane, type Limiter, type Permit } from './limiter.js';
import {
  documentPath,
  documentTypes,
  personalInfoPath,
  timeSeries,
  type DocumentType,
  type TimeSeriesType,
} from './registry.js';

export type RateLimitTier = 'application' | 'token';

/**
 * Every non-2xx answer from Oura (and every network failure) becomes one of
 * these, classified at the boundary so callers only decide what to do.
 */
export class OuraApiError extends Error {
  override name = 'OuraApiError';
  constructor(
    message: string,
    readonly status: number,
    readonly retryable: boolean,
    readonly opts: {
      /** Machine-readable reason: `rate_limited`, `unauthorized`, `invalid_grant`, `network`, … */
      code: string;
      retryAfterMs?: number | null;
      tier?: RateLimitTier | null;
      /** What Oura announced in X-RateLimit-* headers, when present. */
      rateLimit?: { limit: number | null; windowS: number | null; resetAt: number | null } | null;
    },
  ) {
    super(message);
  }
  get code() {
    return this.opts.code;
  }
  get retryAfterMs() {
    return this.opts.retryAfterMs ?? null;
  }
  get tier() {
    return this.opts.tier ?? null;
  }
}

export const TokenSet = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1),
  expires_in: z.coerce.number().int().positive().optional(),
  token_type: z.string().optional(),
  scope: z.string().optional(),
});
export type TokenSet = z.infer<typeof TokenSet>;

const Page = z.looseObject({ data: z.array(z.unknown()), next_token: z.string().nullish() });
const PersonalInfo = z.looseObject({ id: z.string().min(1) });

/** A JSON answer of the shape a route promises, or an OuraApiError (bad_response) like every other failure. */
function parseShape<T>(schema: z.ZodType<T>, json: unknown, route: string): T {
  const r = schema.safeParse(json);
  if (!r.success) throw new OuraApiError(`${route}: Oura's answer does not have the expected shape`, 502, true, { code: 'bad_response' });
  return r.data;
}

/** A body as JSON, or undefined when it is not JSON (the caller's schema then refuses it). */
function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function headerNumber(h: Headers, name: string): number | null {
  const v = h.get(name);
  if (v === null || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** Turns a non-2xx answer into one classified OuraApiError. */
export function classifyResponse(status: number, headers: Headers, body: string, what: string): OuraApiError {
  let code = `http_${status}`;
  let detail = '';
  try {
    const parsed = JSON.parse(body) as { error?: unknown; detail?: unknown };
    if (typeof parsed.error === 'string') code = parsed.error;
    if (typeof parsed.detail === 'string') detail = parsed.detail.slice(0, 200);
    // FastAPI-style validation errors (422): [{loc, msg, type}, …]
    else if (Array.isArray(parsed.detail) && parsed.detail.length > 0) {
      detail = (parsed.detail as Array<{ loc?: unknown[]; msg?: unknown }>)
        .slice(0, 3)
        .map((d) => `${Array.isArray(d.loc) ? d.loc.join('.') + ': ' : ''}${typeof d.msg === 'string' ? d.msg : 'invalid'}`)
        .join('; ')
        .slice(0, 300);
    }
  } catch {
    /* not JSON */
  }
  if (status === 429) {
    const retryAfterS = headerNumber(headers, 'retry-after');
    const resetAt = headerNumber(headers, 'x-ratelimit-reset');
    const tierHeader = headers.get('x-ratelimit-tier')?.toLowerCase();
    const tier: RateLimitTier = tierHeader === 'token' ? 'token' : 'application';
    // Retry-After says when to retry; X-RateLimit-Reset is when the whole window is
    // empty again, which is later. Only without Retry-After do we wait for the reset.
    const fromReset = resetAt !== null ? resetAt * 1000 - Date.now() : null;
    const retryAfterMs = Math.max(retryAfterS !== null ? retryAfterS * 1000 : (fromReset ?? 1000), 1000);
    return new OuraApiError(`${what}: rate limited (${tier} tier)`, status, true, {
      code: 'rate_limited',
      retryAfterMs,
      tier,
      rateLimit: {
        limit: headerNumber(headers, 'x-ratelimit-limit'),
        windowS: headerNumber(headers, 'x-ratelimit-window'),
        resetAt,
      },
    });
  }
  if (status === 401) code = code === `http_401` ? 'unauthorized' : code;
  if (status === 403) code = 'forbidden';
  if (status === 404) code = 'not_found';
  if (status === 426) code = 'upgrade_required';
  const retryable = status >= 500 || status === 408;
  const retryAfterS = headerNumber(headers, 'retry-after');
  return new OuraApiError(`${what}: Oura answered ${status}${detail ? ` (${detail})` : ''}`, status, retryable, {
    code,
    retryAfterMs: retryAfterS !== null ? retryAfterS * 1000 : null,
  });
}

export interface OuraClientOptions {
  apiBaseUrl: string;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  limiter: Limiter;
  log: Logger;
  timeoutMs?: number;
  /** Called for every answer Oura gives (metrics). */
  onResponse?: (info: { route: string; status: number; tier: RateLimitTier | null; ms: number; purpose: Purpose }) => void;
  /** Called for every permit taken (metrics). */
  onPermit?: (info: { waitedMs: number; lane: Lane }) => void;
}

/**
 * What a request is for, so that the budget can be accounted for and planned:
 * `live` serves webhook events, `backfill` loads a user's history,
 * `timeseries` brings heart rate and ring battery up to date, `reconcile`
 * re-reads recent documents, `token` is the OAuth token endpoint and the
 * connect flow, `subscriptions` the webhook subscription routes.
 */
export const PURPOSES = ['live', 'backfill', 'timeseries', 'reconcile', 'token', 'subscriptions'] as const;
export type Purpose = (typeof PURPOSES)[number];

/**
 * The limiter lane a purpose's requests wait in. Token and subscription calls
 * go with live work: they are few, and live work waits on them (a refresh
 * comes before the reads it unblocks), so ranking them lower would let
 * background reads hold up live ones.
 */
export function laneOf(purpose: Purpose): Lane {
  switch (purpose) {
    case 'backfill':
    case 'timeseries':
    case 'reconcile':
      return purpose;
    default:
      return 'live';
  }
}

/** Per-request options. */
export interface RequestOptions {
  /** What the request is for (metrics, and the limiter lane). Default live. */
  purpose?: Purpose;
  /** The limiter lane, when it is not the purpose's own (laneOf). */
  lane?: Lane;
  /** The caller already took this request's permit from the limiter. */
  permit?: Permit;
}

/**
 * A user's credentials for requests made on their behalf. The access token is
 * read only once the request's permit is granted: a token read before a long
 * wait on the limiter can expire (or be revoked and replaced) by the time the
 * request goes out. The user is also the request's token-tier key in the
 * limiter: a user holds one live access token at a time, and the key stays
 * the same across refreshes.
 */
export interface UserAuth {
  readonly userId: string;
  /** The access token to send now (refreshed first when it is about to expire). */
  token(): Promise<string>;
}

/** An access token as it is (OAuth connect, before the user is stored), or a user's credentials. */
export type Bearer = string | UserAuth;

/** The limiter's token-tier key of a request made with `bearer`. */
export function limiterTier(bearer: Bearer): string {
  return typeof bearer === 'string' ? bearer : `user:${bearer.userId}`;
}

export interface DateRange {
  /** `YYYY-MM-DD` or an ISO date-time. */
  startDate?: string;
  endDate?: string;
}

/**
 * The only code that speaks HTTP to Oura. Every request first takes a permit
 * from the shared limiter; every failure is an OuraApiError.
 */
export function createOuraClient(opts: OuraClientOptions) {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const log = opts.log.child({ module: 'oura-client' });

  /**
   * Sends one request under a permit. With a `bearer`, its access token is read
   * after the permit is granted and sent as the Authorization header.
   */
  async function send(
    route: string,
    url: string,
    init: RequestInit,
    bearer: Bearer | null,
    ropts: RequestOptions = {},
  ): Promise<{ status: number; headers: Headers; body: string }> {
    const lane = ropts.lane ?? laneOf(ropts.purpose ?? 'live');
    const tier = bearer === null ? null : limiterTier(bearer);
    const stale = (p: Permit) => Date.now() - p.slotAt > opts.limiter.staleAfterMs;
    let permit = ropts.permit;
    let token = typeof bearer === 'string' ? bearer : undefined;
    // The request goes with a fresh permit, a token read after it, and no
    // pause begun meanwhile; a few rounds at most.
    // - A permit whose slot passed long ago (a stalled event loop, a slow query
    //   in between) is not used: sent now, the request could land in Oura's
    //   window together with later slots. Take a fresh one instead.
    // - The token is read after the wait: one read before it may have expired
    //   meanwhile. A refresh on the way makes the permit stale: take another,
    //   then read the (refreshed) token again.
    // - A 429 another process saw after this permit was granted pauses the
    //   tier: wait it out with the others, instead of adding to it.
    for (let round = 0; ; round++) {
      let renewed = false;
      if (!permit || (round < 3 && stale(permit))) {
        permit = await opts.limiter.acquire(tier, { lane });
        opts.onPermit?.({ waitedMs: permit.waitedMs, lane });
        renewed = true;
      }
      if (bearer !== null && typeof bearer !== 'string' && (renewed || token === undefined)) token = await bearer.token();
      if (round >= 3) break;
      if (stale(permit)) continue;
      if ((await opts.limiter.pauseLeft(tier)) > 0) {
        permit = undefined;
        continue;
      }
      break;
    }
    if (token !== undefined) {
      init = { ...init, headers: { ...(init.headers as Record<string, string>), authorization: `Bearer ${token}` } };
    }
    const started = Date.now();
    let res: Response;
    try {
      res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error;
      const timeout = e.name === 'TimeoutError' || e.name === 'AbortError';
      throw new OuraApiError(`${route}: ${timeout ? 'timed out' : `network error (${e.message})`}`, 0, true, {
        code: timeout ? 'timeout' : 'network',
      });
    }
    const body = await res.text();
    const tierHeader = res.headers.get('x-ratelimit-tier');
    opts.onResponse?.({
      route,
      purpose: ropts.purpose ?? 'live',
      status: res.status,
      tier: tierHeader === 'token' || tierHeader === 'application' ? tierHeader : null,
      ms: Date.now() - started,
    });
    if (res.status >= 300) {
      const err = classifyResponse(res.status, res.headers, body, route);
      if (res.status === 429) {
        // The pause first: every process's next request waits for it.
        await opts.limiter.pause(err.tier ?? 'application', err.retryAfterMs ?? 1000, tier, err.opts.rateLimit);
        log.warn({ route, tier: err.tier, retryAfterMs: err.retryAfterMs }, 'oura rate limit hit');
      }
      throw err;
    }
    return { status: res.status, headers: res.headers, body };
  }

  async function getJson(route: string, pathAndQuery: string, bearer: Bearer, ropts?: RequestOptions): Promise<unknown> {
    const { body } = await send(route, `${opts.apiBaseUrl}${pathAndQuery}`, { method: 'GET', headers: { accept: 'application/json' } }, bearer, ropts);
    try {
      return JSON.parse(body);
    } catch {
      throw new OuraApiError(`${route}: Oura sent a body that is not JSON`, 502, true, { code: 'bad_response' });
    }
  }

  async function tokenRequest(params: Record<string, string>): Promise<TokenSet> {
    const form = new URLSearchParams({ ...params, client_id: opts.clientId, client_secret: opts.clientSecret });
    const { body } = await send(
      'oauth/token',
      opts.tokenUrl,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
      },
      null,
      { purpose: 'token' },
    );
    const parsed = TokenSet.safeParse(parseJson(body));
    if (!parsed.success) throw new OuraApiError('oauth/token: unexpected token response', 502, true, { code: 'bad_response' });
    return parsed.data;
  }

  function query(params: Record<string, string | undefined>): string {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  return {
    /** One document, or null when Oura says it does not exist (deleted). */
    async getDocument(
      bearer: Bearer,
      type: DocumentType,
      id: string,
      ropts?: RequestOptions,
    ): Promise<Record<string, unknown> | null> {
      try {
        const raw = await getJson(type, documentPath(type, id), bearer, ropts);
        const parsed = documentTypes[type].schema.safeParse(raw);
        if (!parsed.success) {
          throw new OuraApiError(`${type}: document does not match the schema`, 502, false, { code: 'bad_document' });
        }
        return raw as Record<string, unknown>;
      } catch (err) {
        if (err instanceof OuraApiError && err.status === 404) return null;
        throw err;
      }
    },

    /** Pages of a collection route, following next_token. */
    async *listDocuments(
      bearer: Bearer,
      type: DocumentType,
      range: DateRange = {},
      ropts: RequestOptions = {},
    ): AsyncGenerator<Array<Record<string, unknown>>> {
      const info = documentTypes[type];
      let nextToken: string | undefined;
      let first = true;
      do {
        const params = info.dateField
          ? { start_date: range.startDate, end_date: range.endDate, next_token: nextToken }
          : { next_token: nextToken };
        const page = parseShape(
          Page,
          await getJson(type, `${info.path}${query(params)}`, bearer, first ? ropts : { lane: ropts.lane, purpose: ropts.purpose }),
          type,
        );
        first = false;
        const docs = page.data.filter((d) => info.schema.safeParse(d).success) as Array<Record<string, unknown>>;
        if (docs.length !== page.data.length) log.warn({ dataType: type, dropped: page.data.length - docs.length }, 'documents without an id skipped');
        yield docs;
        nextToken = page.next_token ?? undefined;
      } while (nextToken);
    },

    /** Pages of a time series between two ISO date-times. */
    async *listTimeSeries(
      bearer: Bearer,
      type: TimeSeriesType,
      range: { startDateTime: string; endDateTime: string },
      ropts: RequestOptions = {},
    ): AsyncGenerator<Array<Record<string, unknown>>> {
      const info = timeSeries[type];
      let nextToken: string | undefined;
      let first = true;
      do {
        const params = { start_datetime: range.startDateTime, end_datetime: range.endDateTime, next_token: nextToken };
        const page = parseShape(
          Page,
          await getJson(type, `${info.path}${query(params)}`, bearer, first ? ropts : { lane: ropts.lane, purpose: ropts.purpose }),
          type,
        );
        first = false;
        yield page.data.filter((d) => info.schema.safeParse(d).success) as Array<Record<string, unknown>>;
        nextToken = page.next_token ?? undefined;
      } while (nextToken);
    },

    async personalInfo(bearer: Bearer, ropts: RequestOptions = {}): Promise<Record<string, unknown> & { id: string }> {
      return parseShape(PersonalInfo, await getJson('personal_info', personalInfoPath, bearer, ropts), 'personal_info') as Record<string, unknown> & {
        id: string;
      };
    },

    exchangeCode(code: string, redirectUri: string): Promise<TokenSet> {
      return tokenRequest({ grant_type: 'authorization_code', code, redirect_uri: redirectUri });
    },

    refresh(refreshToken: string): Promise<TokenSet> {
      return tokenRequest({ grant_type: 'refresh_token', refresh_token: refreshToken });
    },

    /** Revokes an access token at Oura (and with it the grant). */
    async revoke(accessToken: string): Promise<void> {
      const url = new URL('/oauth/revoke', opts.tokenUrl);
      url.searchParams.set('access_token', accessToken);
      await send('oauth/revoke', url.toString(), { method: 'POST' }, null, { purpose: 'token' });
    },

    /**
     * Sends one request on behalf of the application (client credentials in
     * x-client-id / x-client-secret headers), e.g. the webhook subscription routes.
     */
    async appRequest(route: string, method: string, pathAndQuery: string, body?: unknown): Promise<{ status: number; json: unknown }> {
      const res = await send(
        route,
        `${opts.apiBaseUrl}${pathAndQuery}`,
        {
          method,
          headers: {
            'x-client-id': opts.clientId,
            'x-client-secret': opts.clientSecret,
            accept: 'application/json',
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        },
        null,
        { purpose: 'subscriptions' },
      );
      let json: unknown = null;
      if (res.body) {
        try {
          json = JSON.parse(res.body);
        } catch {
          throw new OuraApiError(`${route}: Oura sent a body that is not JSON`, 502, true, { code: 'bad_response' });
        }
      }
      return { status: res.status, json };
    },
  };
}
export type OuraClient = ReturnType<typeof createOuraClient>;
