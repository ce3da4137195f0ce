import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DOCUMENT_TYPES,
  TIME_SERIES,
  documentTypes,
  personalInfoPath,
  timeSeries,
  type DocumentType,
  type TimeSeriesType,
} from '../oura/registry.js';
import { seriesPage } from './generate.js';
import { bearerToken, validationError, type MetaOf, type ValidationIssue } from './http.js';
import { docDay, type SimState, type SimUser } from './state.js';
import { addDays, DAY_MS, parseQueryInstant, todayUtc } from './time.js';

/**
 * The data routes: /v2/usercollection/* for every type in the registry, behind
 * bearer auth and the two rate-limit tiers.
 */

type Query = Record<string, string | undefined>;

const MAX_SERIES_RANGE_MS = 30 * DAY_MS;

const encodeToken = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
function decodeToken<T>(token: string, check: (v: Record<string, unknown>) => boolean): T | null {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    return v && typeof v === 'object' && check(v as Record<string, unknown>) ? (v as T) : null;
  } catch {
    return null;
  }
}

const issue = (param: string, msg: string, type = 'value_error'): ValidationIssue => ({ loc: ['query', param], msg, type });
const badRequest = (reply: FastifyReply, issues: ValidationIssue[]) => reply.code(400).send(validationError(issues));

/** Page position of a document collection: the range as wall-clock bounds and the last (day, seq) served. */
interface DocCursor {
  s: string | null;
  e: string | null;
  d: string;
  q: number;
}

/** Page position of a time series: next row time and the range end. */
interface SeriesCursor {
  n: number;
  e: number;
}

export function registerUserCollectionRoutes(app: FastifyInstance, state: SimState, meta: MetaOf): void {
  const users = new WeakMap<FastifyRequest, SimUser>();
  const userOf = (req: FastifyRequest): SimUser => users.get(req) as SimUser;

  app.register(async (scope) => {
    scope.addHook('preHandler', async (req, reply) => {
      const auth = state.authenticate(bearerToken(req.headers.authorization));
      if ('error' in auth) return reply.code(401).send({ detail: auth.error });
      meta(req).userId = auth.user.id;
      const rejected = state.limiter.hit(auth.access.token);
      if (rejected) {
        meta(req).tier = rejected.tier;
        return reply
          .code(429)
          .headers({
            'retry-after': String(rejected.retryAfterS),
            'x-ratelimit-limit': String(rejected.limit),
            'x-ratelimit-window': String(rejected.windowS),
            'x-ratelimit-reset': String(rejected.resetS),
            'x-ratelimit-tier': rejected.tier,
          })
          .send({ detail: `Rate limit exceeded (${rejected.tier} tier)` });
      }
      if (auth.user.forbidden) {
        return reply.code(403).send({ detail: "Access forbidden: the user's Oura membership has expired" });
      }
      users.set(req, auth.user);
    });

    scope.get(personalInfoPath, async (req) => userOf(req).personalInfo);

    for (const type of DOCUMENT_TYPES) {
      const info = documentTypes[type];
      scope.get(info.path, async (req, reply) => collection(type, userOf(req), req.query as Query, reply));
      scope.get(`${info.path}/:document_id`, async (req, reply) => {
        const { document_id } = req.params as { document_id: string };
        const doc = state.getDoc(userOf(req).id, type, document_id);
        return doc ? doc : reply.code(404).send({ detail: 'Not Found' });
      });
    }

    for (const kind of TIME_SERIES) {
      scope.get(timeSeries[kind].path, async (req, reply) => series(kind, userOf(req), req.query as Query, reply));
    }
  });

  function collection(type: DocumentType, user: SimUser, q: Query, reply: FastifyReply) {
    const info = documentTypes[type];
    let cursor: DocCursor | null = null;
    if (q.next_token !== undefined) {
      cursor = decodeToken<DocCursor>(q.next_token, (v) => typeof v.d === 'string' && typeof v.q === 'number');
      if (!cursor) return badRequest(reply, [issue('next_token', 'Invalid next_token')]);
    }
    let start: string | null = cursor?.s ?? null;
    let end: string | null = cursor?.e ?? null;
    if (!cursor && info.dateField !== null) {
      const issues: ValidationIssue[] = [];
      const parsed = (['start_date', 'end_date'] as const).map((p) => {
        const raw = q[p];
        if (raw === undefined || raw === '') return null;
        const v = parseQueryInstant(raw, true);
        if (!v) issues.push(issue(p, 'Input should be a valid date (YYYY-MM-DD) or datetime', 'date_parsing'));
        return v;
      });
      if (issues.length > 0) return badRequest(reply, issues);
      // A date-only end_date is the START of that day: its documents are not included.
      end = parsed[1]?.wall ?? `${addDays(todayUtc(), 1)}T00:00:00.000`;
      start = parsed[0]?.wall ?? `${addDays(end.slice(0, 10), -1)}${end.slice(10)}`;
      if (start > end) return badRequest(reply, [issue('start_date', 'start_date must not be after end_date')]);
    }
    const inRange = (day: string): boolean => {
      const wall = `${day}T00:00:00.000`;
      return (start === null || wall >= start) && (end === null || wall < end);
    };
    const after = (day: string, seq: number): boolean => !cursor || day > cursor.d || (day === cursor.d && seq > cursor.q);
    const matching = state.listDocs(user.id, type).filter((s) => {
      const day = docDay(type, s.doc);
      return inRange(day) && after(day, s.seq);
    });
    const page = matching.slice(0, state.config.pageSize);
    const last = page[page.length - 1];
    const next =
      last && matching.length > page.length
        ? encodeToken({ s: start, e: end, d: docDay(type, last.doc), q: last.seq } satisfies DocCursor)
        : null;
    return reply.send({ data: page.map((s) => s.doc), next_token: next });
  }

  function series(kind: TimeSeriesType, user: SimUser, q: Query, reply: FastifyReply) {
    const now = Date.now();
    let fromMs: number;
    let toMs: number;
    if (q.next_token !== undefined) {
      const c = decodeToken<SeriesCursor>(q.next_token, (v) => typeof v.n === 'number' && typeof v.e === 'number');
      if (!c) return badRequest(reply, [issue('next_token', 'Invalid next_token')]);
      fromMs = c.n;
      toMs = c.e;
    } else {
      const issues: ValidationIssue[] = [];
      const parsed = (['start_datetime', 'end_datetime'] as const).map((p) => {
        const raw = q[p];
        if (raw === undefined || raw === '') return null;
        const v = parseQueryInstant(raw, false);
        if (!v) {
          issues.push(issue(p, 'Input should be a valid datetime (a "+" in the offset must be sent as %2B)', 'datetime_parsing'));
        }
        return v;
      });
      if (issues.length > 0) return badRequest(reply, issues);
      toMs = parsed[1]?.ms ?? now;
      fromMs = parsed[0]?.ms ?? toMs - DAY_MS;
      if (fromMs > toMs) return badRequest(reply, [issue('start_datetime', 'start_datetime must not be after end_datetime')]);
      if (toMs - fromMs > MAX_SERIES_RANGE_MS) {
        return badRequest(reply, [issue('end_datetime', 'The range between start_datetime and end_datetime must not exceed 30 days')]);
      }
    }
    const from = Math.max(fromMs, user.seriesFrom ?? Number.POSITIVE_INFINITY);
    const to = Math.min(toMs, now);
    const u = { seed: user.seed, offsetMin: state.offsetMinutesOf(user) };
    if (q.latest === 'true' && q.next_token === undefined) {
      const { rows } = seriesPage(kind, u, from, to, Number.MAX_SAFE_INTEGER);
      return reply.send({ data: rows.slice(-1), next_token: null });
    }
    const { rows, next } = seriesPage(kind, u, from, to, state.config.timeSeriesPageSize);
    return reply.send({ data: rows, next_token: next === null ? null : encodeToken({ n: next, e: toMs } satisfies SeriesCursor) });
  }
}
