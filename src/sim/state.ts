import { randomBytes } from 'node:crypto';
import { DOCUMENT_TYPES, documentTypes, type DocumentType } from '../oura/registry.js';
import { generateDocument, generateHistory, generatePersonalInfo, observableChange, type Doc } from './generate.js';
import { createRng, hashString, type Rng } from './prng.js';
import { createRateLimiter, type Limit, type Tier } from './ratelimit.js';
import { addDays, dayStartMs, offsetMinutes, todayUtc } from './time.js';

export interface SimOptions {
  clientId: string;
  clientSecret: string;
  /** Application tier: all tokens together. Default 5000 per 300 s; null turns it off. */
  appLimit?: Limit | null;
  /** Token tier: each access token on its own. Default off. */
  tokenLimit?: Limit | null;
  /** Access token lifetime, default 86400 s. */
  accessTokenTtlS?: number;
  /** Documents per page, default 50. */
  pageSize?: number;
  /** Time-series rows per page, default 1000. */
  timeSeriesPageSize?: number;
  /** Days of history for users created by /oauth/authorize, default 0. */
  defaultHistoryDays?: number;
  /** Webhook subscription lifetime, default 90 days. */
  subscriptionTtlS?: number;
  /** Seed of every generated value. */
  seed?: number;
  /**
   * Where the simulator really sends a callback: a URL starting with `from` is
   * fetched at `to` + the rest (e.g. the public `http://localhost:8080` → `http://api:8080`
   * inside compose). Subscriptions still show the URL as registered.
   */
  callbackRewrite?: ReadonlyArray<{ from: string; to: string }>;
  logger?: boolean;
}

export interface SimUser {
  id: string;
  email: string;
  /** Seed of this user's documents and time series. */
  seed: number;
  rng: Rng;
  /** UTC offset of the user's local times, `+02:00`. */
  offset: string;
  /** A flagged user gets 403 on every data route. */
  forbidden: boolean;
  createdAt: number;
  /** Time series exist from this instant up to now; null: none. */
  seriesFrom: number | null;
  personalInfo: Record<string, unknown>;
}

export interface StoredDoc {
  /** Creation order, the tie-break after the day when paginating. */
  seq: number;
  doc: Doc;
}

export interface AccessToken {
  token: string;
  userId: string;
  clientId: string;
  scope: string;
  expiresAt: number;
  revoked: boolean;
}

export interface RefreshToken {
  token: string;
  userId: string;
  clientId: string;
  scope: string;
  used: boolean;
  revoked: boolean;
}

export interface AuthCode {
  code: string;
  userId: string;
  clientId: string;
  redirectUri: string;
  scope: string;
  expiresAt: number;
}

export interface Subscription {
  id: string;
  callback_url: string;
  event_type: string;
  data_type: string;
  expiration_time: string;
  verification_token: string;
  clientId: string;
}

export interface RequestLogEntry {
  t: number;
  method: string;
  path: string;
  query: string;
  status: number;
  userId: string | null;
  tier: Tier | null;
}

export interface Fault {
  id: number;
  /** The status to answer with; absent for a slow answer (`delayMs`). */
  status?: number;
  delayMs?: number;
  remaining: number;
  path?: string;
  userId?: string;
  /** For a 429 fault: which tier it claims and when to retry. */
  tier?: Tier;
  retryAfterS?: number;
}

export interface WebhookEvent {
  event_type: string;
  data_type: string;
  object_id: string;
  event_time: string;
  user_id: string;
}

export interface Delivery {
  t: number;
  callback_url: string;
  status: number | null;
  error?: string;
  event: WebhookEvent;
  /** The x-oura-signature sent (tests check it never reaches our logs). */
  signature?: string;
}

export interface NewUser {
  id?: string;
  historyDays?: number;
  email?: string;
  forbidden?: boolean;
  offset?: string;
}

const CODE_TTL_MS = 10 * 60_000;
const newSecret = (): string => randomBytes(24).toString('base64url');

export function createSimState(opts: SimOptions) {
  const seed = opts.seed ?? 1;
  const rng = createRng(seed);
  const config = {
    clientId: opts.clientId,
    clientSecret: opts.clientSecret,
    appLimit: opts.appLimit === undefined ? { limit: 5000, windowS: 300 } : opts.appLimit,
    tokenLimit: opts.tokenLimit ?? null,
    accessTokenTtlS: opts.accessTokenTtlS ?? 86_400,
    pageSize: opts.pageSize ?? 50,
    timeSeriesPageSize: opts.timeSeriesPageSize ?? 1000,
    defaultHistoryDays: opts.defaultHistoryDays ?? 0,
    subscriptionTtlS: opts.subscriptionTtlS ?? 90 * 86_400,
    seed,
    callbackRewrite: opts.callbackRewrite ?? [],
  };
  const users = new Map<string, SimUser>();
  const docs = new Map<string, Record<DocumentType, Map<string, StoredDoc>>>();
  const codes = new Map<string, AuthCode>();
  /** Every code ever issued, used or not (for allSecrets). */
  const issuedCodes: string[] = [];
  const accessTokens = new Map<string, AccessToken>();
  const refreshTokens = new Map<string, RefreshToken>();
  const subscriptions = new Map<string, Subscription>();
  const requests: RequestLogEntry[] = [];
  const deliveries: Delivery[] = [];
  const faults: Fault[] = [];
  const grants = { authorization_code: 0, refresh_token: 0 };
  const counters = { requests: 0, rateLimited: 0, faultSeq: 0, refreshTokensReused: 0 };
  let seq = 0;
  const limiter = createRateLimiter(() => ({ app: config.appLimit, token: config.tokenLimit }));

  function userDocs(userId: string): Record<DocumentType, Map<string, StoredDoc>> {
    let byType = docs.get(userId);
    if (!byType) {
      byType = Object.fromEntries(DOCUMENT_TYPES.map((t) => [t, new Map()])) as Record<DocumentType, Map<string, StoredDoc>>;
      docs.set(userId, byType);
    }
    return byType;
  }

  function store(userId: string, type: DocumentType, doc: Doc): Doc {
    userDocs(userId)[type].set(doc.id, { seq: ++seq, doc });
    return doc;
  }

  function createUser(input: NewUser = {}): SimUser {
    const id = input.id ?? rng.uuid();
    if (users.has(id)) throw new Error(`user ${id} already exists`);
    const userSeed = (hashString(id) ^ seed) >>> 0;
    const userRng = createRng(userSeed);
    const offset = input.offset ?? '+02:00';
    const days = input.historyDays ?? 0;
    const today = todayUtc();
    const user: SimUser = {
      id,
      email: input.email ?? `${id.slice(0, 8)}@sim.example`,
      seed: userSeed,
      rng: userRng,
      offset,
      forbidden: input.forbidden ?? false,
      createdAt: Date.now(),
      seriesFrom: days > 0 ? dayStartMs(addDays(today, -(days - 1))) : null,
      personalInfo: {},
    };
    user.personalInfo = generatePersonalInfo(id, user.email, userRng);
    users.set(id, user);
    userDocs(id);
    for (const { type, doc } of generateHistory(today, days, offset, userRng)) store(id, type, doc);
    return user;
  }

  function issueTokens(userId: string, clientId: string, scope: string) {
    const access: AccessToken = {
      token: newSecret(),
      userId,
      clientId,
      scope,
      expiresAt: Date.now() + config.accessTokenTtlS * 1000,
      revoked: false,
    };
    const refresh: RefreshToken = { token: newSecret(), userId, clientId, scope, used: false, revoked: false };
    accessTokens.set(access.token, access);
    refreshTokens.set(refresh.token, refresh);
    return { access, refresh };
  }

  return {
    config,
    users,
    docs,
    codes,
    accessTokens,
    refreshTokens,
    subscriptions,
    requests,
    deliveries,
    faults,
    grants,
    counters,
    limiter,
    rng,
    createUser,
    issueTokens,

    createCode(userId: string, clientId: string, redirectUri: string, scope: string): AuthCode {
      const code: AuthCode = { code: newSecret(), userId, clientId, redirectUri, scope, expiresAt: Date.now() + CODE_TTL_MS };
      codes.set(code.code, code);
      issuedCodes.push(code.code);
      return code;
    },

    /** Documents of a type for a user, in (day, creation) order. */
    listDocs(userId: string, type: DocumentType): StoredDoc[] {
      return [...userDocs(userId)[type].values()].sort((a, b) => {
        const da = docDay(type, a.doc);
        const db = docDay(type, b.doc);
        return da < db ? -1 : da > db ? 1 : a.seq - b.seq;
      });
    },

    getDoc(userId: string, type: DocumentType, id: string): Doc | undefined {
      return docs.get(userId)?.[type].get(id)?.doc;
    },

    addDoc(userId: string, type: DocumentType, day: string | undefined, fields: Record<string, unknown> = {}): Doc {
      const user = users.get(userId);
      if (!user) throw new Error(`no user ${userId}`);
      const doc = generateDocument(type, { day: day ?? todayUtc(), offset: user.offset, rng: user.rng }, fields);
      if (userDocs(userId)[type].has(doc.id)) throw new Error(`document ${doc.id} already exists`);
      return store(userId, type, doc);
    },

    updateDoc(userId: string, type: DocumentType, id: string, fields?: Record<string, unknown>): Doc | undefined {
      const user = users.get(userId);
      const stored = docs.get(userId)?.[type].get(id);
      if (!user || !stored) return undefined;
      const change =
        fields && Object.keys(fields).length > 0
          ? fields
          : observableChange(type, stored.doc, { day: docDay(type, stored.doc), offset: user.offset, rng: user.rng });
      stored.doc = { ...stored.doc, ...change, id };
      return stored.doc;
    },

    deleteDoc(userId: string, type: DocumentType, id: string): boolean {
      return docs.get(userId)?.[type].delete(id) ?? false;
    },

    /** The user behind a bearer token, or why it is refused. */
    authenticate(token: string | undefined, now = Date.now()): { user: SimUser; access: AccessToken } | { error: string } {
      if (!token) return { error: 'Missing or malformed Authorization header' };
      const access = accessTokens.get(token);
      if (!access) return { error: 'Invalid access token' };
      if (access.revoked) return { error: 'Access token has been revoked' };
      if (access.expiresAt <= now) return { error: 'Access token has expired' };
      const user = users.get(access.userId);
      if (!user) return { error: 'Invalid access token' };
      return { user, access };
    },

    /** Every token string issued to a user (current or not): `{access, refresh}`. */
    /** Every access and refresh token and authorization code ever issued (tests check none reaches our logs). */
    allSecrets(): string[] {
      return [
        ...[...accessTokens.values()].map((a) => a.token),
        ...[...refreshTokens.values()].map((r) => r.token),
        ...issuedCodes,
      ];
    },

    tokensOf(userId: string): { access: string[]; refresh: string[] } {
      return {
        access: [...accessTokens.values()].filter((a) => a.userId === userId).map((a) => a.token),
        refresh: [...refreshTokens.values()].filter((r) => r.userId === userId).map((r) => r.token),
      };
    },

    /** Ends every access token of a user now. */
    expireTokens(userId: string): number {
      let n = 0;
      const now = Date.now();
      for (const a of accessTokens.values()) {
        if (a.userId === userId && !a.revoked && a.expiresAt > now) {
          a.expiresAt = now;
          n++;
        }
      }
      return n;
    },

    /** Revokes a user's tokens (all, or those of one client): access and refresh. */
    revokeUser(userId: string, clientId?: string): void {
      for (const a of accessTokens.values()) if (a.userId === userId && (!clientId || a.clientId === clientId)) a.revoked = true;
      for (const r of refreshTokens.values()) if (r.userId === userId && (!clientId || r.clientId === clientId)) r.revoked = true;
    },

    /** Takes one use of the first fault matching this request, if any. */
    takeFault(path: string, userId: string | null): Fault | undefined {
      const i = faults.findIndex(
        (f) => (!f.path || path.startsWith(f.path)) && (!f.userId || f.userId === userId),
      );
      const f = faults[i];
      if (!f) return undefined;
      if (--f.remaining <= 0) faults.splice(i, 1);
      return f;
    },

    addFault(f: Omit<Fault, 'id' | 'remaining'> & { count: number }): Fault {
      const fault: Fault = {
        id: ++counters.faultSeq,
        status: f.status,
        delayMs: f.delayMs,
        remaining: f.count,
        path: f.path,
        userId: f.userId,
        tier: f.tier,
        retryAfterS: f.retryAfterS,
      };
      faults.push(fault);
      return fault;
    },

    offsetMinutesOf(user: SimUser): number {
      return offsetMinutes(user.offset);
    },
  };
}

/**
 * The day a document is filed under for start_date/end_date: the registry's
 * date field, or (when that is null, e.g. a rest mode period still running)
 * the first other day field that has a value.
 */
export function docDay(type: DocumentType, doc: Record<string, unknown>): string {
  const info = documentTypes[type];
  for (const f of [info.dateField, ...info.dayFields]) {
    const v = f ? doc[f] : undefined;
    if (typeof v === 'string') return v;
  }
  return '';
}

export type SimState = ReturnType<typeof createSimState>;
