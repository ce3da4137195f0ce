import { z } from 'zod';
import { DEFAULT_FLOORS, type BackgroundLane } from './oura/lanes.js';

/** `N/W`: at most N requests in any rolling W seconds. */
export interface RateLimit {
  limit: number;
  windowS: number;
}

const rateLimit = z
  .string()
  .regex(/^\s*\d+\s*\/\s*\d+\s*$/, 'expected N/W, e.g. 5000/300 (N requests per rolling W seconds)')
  .transform((s): RateLimit => {
    const [n, w] = s.split('/').map((x) => Number(x.trim()));
    return { limit: n!, windowS: w! };
  })
  .refine((r) => r.limit >= 1 && r.windowS >= 1, 'N and W must both be at least 1');

const FLOOR_LANES = Object.keys(DEFAULT_FLOORS) as BackgroundLane[];

/** `backfill=0.05,timeseries=0.1,reconcile=0.05`: lanes left out keep their default floor. */
const floors = z
  .string()
  .transform((s, ctx): Record<BackgroundLane, number> => {
    const out = { ...DEFAULT_FLOORS };
    for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
      const m = /^([a-z]+)\s*=\s*(\d*\.?\d+)$/.exec(part);
      if (!m || !FLOOR_LANES.includes(m[1] as BackgroundLane) || Number(m[2]) > 1) {
        ctx.addIssue({ code: 'custom', message: `expected lane=share with lane one of ${FLOOR_LANES.join(', ')} and share from 0 to 1, e.g. backfill=0.05,timeseries=0.1 (got "${part}")` });
        return z.NEVER;
      }
      out[m[1] as BackgroundLane] = Number(m[2]);
    }
    if (Object.values(out).reduce((a, b) => a + b, 0) > 0.9) {
      ctx.addIssue({ code: 'custom', message: 'the floors add up to more than 0.9 of the budget: live work would starve' });
      return z.NEVER;
    }
    return out;
  });

/** A Redis node or sentinel. */
export interface HostPort {
  host: string;
  port: number;
}

const HOST_PORT = /^([^\s:,@/]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

/** `host:port,host:port` (IPv6 in brackets); the first part that is not one, or the list. */
function readHostPorts(s: string): HostPort[] | { bad: string } {
  const out: HostPort[] = [];
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = HOST_PORT.exec(part);
    if (!m || Number(m[2]) > 65535) return { bad: part };
    out.push({ host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) });
  }
  return out;
}

const hostPorts = z.string().transform((s, ctx) => {
  const r = readHostPorts(s);
  if (!Array.isArray(r)) {
    ctx.addIssue({ code: 'custom', message: `expected host:port[,host:port…] (got "${r.bad}")` });
    return z.NEVER;
  }
  return r;
});

/** What a `redis+cluster://` or `rediss+cluster://` URL says. */
export interface ClusterUrl {
  nodes: HostPort[];
  tls: boolean;
  username?: string;
  password?: string;
}

/**
 * `redis+cluster://[user:password@]host:port[,host:port…][/0]`
 * (`rediss+cluster://`: TLS): some nodes of a Redis Cluster. null for any
 * other URL; 'malformed' for a cluster URL that cannot be read.
 */
export function parseClusterUrl(s: string): ClusterUrl | 'malformed' | null {
  if (!/^rediss?\+cluster:/i.test(s)) return null;
  const m = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^@/?#]+)(?:\/(0?))?$/i.exec(s);
  if (!m) return 'malformed';
  const nodes = readHostPorts(m[3]!);
  if (!Array.isArray(nodes) || nodes.length === 0) return 'malformed';
  const [user, ...password] = (m[2] ?? '').split(':');
  try {
    return {
      nodes,
      tls: m[1]!.toLowerCase() === 'rediss',
      ...(user ? { username: decodeURIComponent(user) } : {}),
      ...(password.length > 0 ? { password: decodeURIComponent(password.join(':')) } : {}),
    };
  } catch {
    return 'malformed';
  }
}

/** The database number a `redis://…/N` URL names (0 when none, or unreadable). */
function redisDatabase(s: string): number {
  if (parseClusterUrl(s)) return 0;
  try {
    return Number(new URL(s).pathname.slice(1)) || 0;
  } catch {
    return 0;
  }
}

/** Ports `first` to `last`. */
export interface PortRange {
  first: number;
  last: number;
}

/** `P`, or `P-Q`; `0`: none (null). */
const portRange = z.string().transform((s, ctx): PortRange | null => {
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(s);
  const first = Number(m?.[1]);
  const last = Number(m?.[2] ?? m?.[1]);
  if (m && first === 0 && !m[2]) return null;
  if (!m || first < 1 || last < first || last > 65535) {
    ctx.addIssue({ code: 'custom', message: 'expected a port (1-65535), a range first-last such as 9464-9471 (each process takes the first port free), or 0 (off)' });
    return z.NEVER;
  }
  return { first, last };
});


/** `5s,5m,30m,2h`: delays in milliseconds. */
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const durations = z.string().transform((s, ctx): number[] => {
  const out: number[] = [];
  for (const part of s.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(part);
    const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!) : NaN;
    if (!m || ms < 1 || ms > 7 * 86_400_000) {
      ctx.addIssue({ code: 'custom', message: `expected delays such as 5s,5m,30m,2h (units ms, s, m, h, d; each at most 7d), got "${part}"` });
      return z.NEVER;
    }
    out.push(ms);
  }
  if (out.length === 0 || out.length > 50) {
    ctx.addIssue({ code: 'custom', message: 'expected 1 to 50 delays, e.g. 5s,5m,30m,2h,5h,10h,10h' });
    return z.NEVER;
  }
  return out;
});

/** The Standard Webhooks symmetric secret: `whsec_` and base64 of 24 to 64 random bytes. */
const webhookSecret = z.string().refine(
  (s) => {
    const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(s);
    const n = m ? Buffer.from(m[1]!, 'base64').length : 0;
    return n >= 24 && n <= 64;
  },
  { message: 'expected whsec_ followed by 24 to 64 random bytes in base64 (generate one with: echo whsec_$(openssl rand -base64 32))' },
);

const url = z.url({ message: 'expected an absolute URL' });
const required = (schema: z.ZodString) => schema.min(1, 'must not be empty');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const base64Key = z
  .string()
  .refine((s) => /^[A-Za-z0-9+/]+={0,2}$/.test(s) && Buffer.from(s, 'base64').length === 32, {
    message: 'expected 32 bytes encoded as base64 (generate one with: openssl rand -base64 32)',
  });

export const Config = z
  .object({
    DATABASE_URL: required(z.string()),
    /**
     * One Redis server, or a Redis Cluster (`redis+cluster://host:port,…`);
     * with REDIS_SENTINELS or REDIS_CLUSTER_NODES, only its credentials (and
     * database number, TLS) are used.
     */
    REDIS_URL: required(z.string()).optional(),
    /** `host:port,host:port`: reach the master through Sentinel (with REDIS_SENTINEL_NAME), found again after a failover. */
    REDIS_SENTINELS: hostPorts.default([]),
    REDIS_SENTINEL_NAME: z.string().min(1).default('mymaster'),
    /**
     * `host:port,host:port`: some nodes of a Redis Cluster (the client finds
     * the others); REDIS_URL then only gives credentials and TLS. A
     * `redis+cluster://` REDIS_URL says the same on its own.
     */
    REDIS_CLUSTER_NODES: hostPorts.default([]),
    OURA_CLIENT_ID: required(z.string()),
    OURA_CLIENT_SECRET: required(z.string()),
    OURA_WEBHOOK_VERIFICATION_TOKEN: required(z.string()),
    OURA_API_BASE_URL: url.default('https://api.ouraring.com'),
    OURA_AUTHORIZE_URL: url.default('https://cloud.ouraring.com/oauth/authorize'),
    OURA_TOKEN_URL: url.optional(),
    PUBLIC_BASE_URL: url,
    TOKEN_ENCRYPTION_KEY: base64Key,
    /** Keys being rotated out (comma-separated, base64): still decrypt, never encrypt. */
    TOKEN_ENCRYPTION_KEY_PREVIOUS: z
      .string()
      .transform((s) => s.split(',').map((k) => k.trim()).filter(Boolean))
      .pipe(z.array(base64Key))
      .default([]),
    ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters'),
    /** The admin surfaces only look: the API's changing routes answer 403, the queue dashboard cannot pause, retry, clean or obliterate. */
    ADMIN_READONLY: z
      .enum(['true', 'false'], { error: 'expected true or false' })
      .transform((v) => v === 'true')
      .default(false),
    OURA_APP_RATE_LIMIT: rateLimit.default({ limit: 5000, windowS: 300 }),
    /**
     * The share of OURA_APP_RATE_LIMIT each background lane keeps in every
     * window while it has work, however busy live work is (see README,
     * "The budget").
     */
    BUDGET_FLOORS: floors.default(DEFAULT_FLOORS),
    /** Oura's per-access-token limit, when known (`N/W`); unset: only pauses Oura announces apply per token. */
    OURA_USER_RATE_LIMIT: rateLimit.optional(),
    WEBHOOK_MAX_AGE_S: int(1, 7 * 24 * 3600).default(7200),
    PORT: int(0, 65535).default(8080),
    HOST: z.string().min(1).default('0.0.0.0'),
    /**
     * Where a `worker` process serves /metrics, /healthz and /readyz (the api
     * serves them on PORT): a port, or a range `first-last` of which each
     * worker process takes the first port free, so several share a host; 0:
     * off.
     */
    METRICS_PORT: portRange.default({ first: 9464, last: 9464 }),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    WORKER_CONCURRENCY: int(1, 1000).default(16),
    /** How long a worker may hold a job before BullMQ treats it as stalled (crashed worker) and re-runs it. */
    JOB_LOCK_MS: int(1000, 600_000).default(30_000),
    /** Attempts of a failing fetch job before it becomes a dead letter. */
    JOB_ATTEMPTS: int(1, 100).default(8),
    /** First retry delay; each retry doubles it, with jitter. */
    JOB_BACKOFF_MS: int(10, 3_600_000).default(2000),
    /** Recorded events still not done after this long are queued again (e.g. Redis lost its data). */
    SWEEP_GRACE_S: int(1, 86_400).default(120),
    /** History loaded when a user connects; 0 turns the load on connect off. */
    BACKFILL_DAYS: int(0, 3650).default(90),
    /** Days re-synced by each reconciliation of a user. */
    RECONCILE_DAYS: int(1, 365).default(3),
    /**
     * Reconciliation's target: each active user's recent days re-read at least
     * this often. The planner picks users by risk and reaches faster cadences
     * when the budget allows (never faster than RECONCILE_MIN_INTERVAL_S);
     * GET /admin/budget reports the cadence reached.
     */
    RECONCILE_INTERVAL_S: int(1, 90 * 86_400).default(7 * 86_400),
    RECONCILE_MIN_INTERVAL_S: int(1, 90 * 86_400).default(21_600),
    /** Every this many reconciliations of a user also re-read the types that rarely change (ring_configuration, rest_mode_period, vo2_max). */
    RECONCILE_SLOW_EVERY: int(1, 1000).default(4),
    /** The time series' target: heart rate and ring battery (no webhooks) read at least this often per active user. */
    TIMESERIES_INTERVAL_S: int(1, 90 * 86_400).default(86_400),
    TIMESERIES_MIN_INTERVAL_S: int(1, 90 * 86_400).default(3600),
    /** How often the planner tops up the background queues. */
    PLANNER_INTERVAL_MS: int(100, 3_600_000).default(15_000),
    /** Workers per process for each background refresh (time series, reconciliation). */
    REFRESH_CONCURRENCY: int(1, 100).default(2),
    /**
     * Live documents should land within this long of their webhook. Under
     * budget pressure a (user, type) pair waits to gather more events into one
     * read, but never past half of this (the other half is for the queue).
     */
    FRESHNESS_TARGET_S: int(1, 86_400).default(300),
    /** The limiter counts as under pressure while it is booked further ahead than this. */
    SCARCE_BACKLOG_MS: int(0, 600_000).default(1500),
    /** Under pressure, a pair is read once no new event came for it for this long (Oura often updates a document seconds after creating it). */
    COALESCE_QUIET_MS: int(0, 600_000).default(6000),
    /**
     * How soon a webhook job set aside looks again: its pair busy (0.75–2×
     * this, with jitter), the user's other pairs served first (1–2.5×), its
     * event held to gather more (at most 5×).
     */
    EVENT_RETRY_MS: int(1, 60_000).default(200),
    /**
     * A 404 for an object whose create or update arrived less than this long
     * ago is not yet "gone": Oura can answer 404 for a document right after
     * announcing it. It gets one delayed re-check first.
     */
    RECHECK_WINDOW_S: int(0, 7 * 86_400).default(600),
    /** How long after such a 404 the object is read again (a collection read of the event's day). */
    RECHECK_DELAY_S: int(0, 86_400).default(60),
    /**
     * While the budget is scarce, at most this many (user, data type) pairs of
     * one user are served at once, the oldest first: they finish one after
     * another instead of all waiting on the limiter together.
     */
    SCARCE_PAIRS_PER_USER: int(1, 64).default(2),
    /**
     * Heart rate and ring battery samples are kept this many days (unset: all).
     * Whole monthly partitions are dropped once all of their month is older;
     * rows are never deleted one by one.
     */
    TIMESERIES_RETENTION_DAYS: int(1, 36_500).optional(),
    /** Served and ignored webhook events are deleted this many days after they arrived. */
    WEBHOOK_EVENTS_RETENTION_DAYS: int(1, 3650).default(30),
    /** Changes in oura.changes, and outbound webhook deliveries delivered or dead, are deleted this many days after they happened. */
    CHANGES_RETENTION_DAYS: int(1, 3650).default(30),
    /**
     * Outbound webhooks (Standard Webhooks) to the partner: both or neither.
     * Nothing is sent without them.
     */
    PARTNER_WEBHOOK_URL: url.refine((u) => /^https?:\/\//i.test(u), 'expected an http or https URL').optional(),
    PARTNER_WEBHOOK_SECRET: webhookSecret.optional(),
    /** Document events carry the document itself (read when sent; absent once deleted). */
    PARTNER_WEBHOOK_INCLUDE_DOCUMENT: z
      .enum(['true', 'false'], { error: 'expected true or false' })
      .transform((v) => v === 'true')
      .default(false),
    /** Delays between attempts after the first, immediate one; after the last, a delivery is dead. */
    PARTNER_WEBHOOK_RETRY_SCHEDULE: durations.default([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]),
    /** How long one attempt may take before it counts as failed. */
    PARTNER_WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(15_000),
    /** Attempts in flight at once per worker process (one per user at a time). */
    PARTNER_WEBHOOK_CONCURRENCY: int(1, 256).default(8),
    /** No webhook for this long while users are active → warning and metric. */
    SILENCE_ALERT_S: int(60, 30 * 86_400).default(86_400),
    /**
     * Namespace of every Redis key (queues, limiter, locks): lets deployments
     * share one Redis. On Redis Cluster it must hold one hash tag
     * (default `{oura-ingest}` there): a key's first `{…}` decides its slot,
     * so every key lands in that one slot, as BullMQ's multi-key scripts need.
     * Refused: an empty `{}` (the whole key would be hashed), a second tag (it
     * would never count), `:` (it separates the prefix from the rest of a
     * key) and spaces.
     */
    REDIS_KEY_PREFIX: z
      .string()
      .regex(
        /^(?=.{1,64}$)[A-Za-z0-9_.-]*(?:\{[A-Za-z0-9_.-]+\})?[A-Za-z0-9_.-]*$/,
        'expected 1-64 letters, digits, dots, dashes or underscores, with at most one non-empty {hash tag} (e.g. {oura-ingest} for Redis Cluster)',
      )
      .optional(),
  })
  .transform((c, ctx) => {
    const fail = (name: string, message: string) => {
      ctx.addIssue({ code: 'custom', path: [name], message });
      return z.NEVER;
    };
    const fromUrl = c.REDIS_URL ? parseClusterUrl(c.REDIS_URL) : null;
    // Never the URL itself in a message: it may hold a password.
    if (fromUrl === 'malformed') return fail('REDIS_URL', 'expected redis+cluster://[user:password@]host:port[,host:port…] (rediss+cluster:// for TLS)');
    const clusterNodes = c.REDIS_CLUSTER_NODES.length > 0 ? c.REDIS_CLUSTER_NODES : (fromUrl?.nodes ?? []);
    const cluster = clusterNodes.length > 0;
    if (!c.REDIS_URL && c.REDIS_SENTINELS.length === 0 && !cluster) {
      return fail('REDIS_URL', 'is required but not set (or set REDIS_SENTINELS or REDIS_CLUSTER_NODES)');
    }
    if (cluster && c.REDIS_SENTINELS.length > 0) {
      return fail(c.REDIS_CLUSTER_NODES.length > 0 ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL', 'names a Redis Cluster, and REDIS_SENTINELS is set too: use one of them');
    }
    if ((cluster || c.REDIS_SENTINELS.length > 0) && c.REDIS_URL && !fromUrl && !URL.canParse(c.REDIS_URL)) {
      return fail('REDIS_URL', 'expected redis[s]://[user:password@]host[:port][/db], of which only the credentials (and database, TLS) are used here');
    }
    if (cluster && c.REDIS_URL && redisDatabase(c.REDIS_URL) > 0) return fail('REDIS_URL', 'names a database other than 0, which Redis Cluster does not have');
    if (cluster && c.REDIS_KEY_PREFIX !== undefined && !/\{[^}]+\}/.test(c.REDIS_KEY_PREFIX)) {
      return fail('REDIS_KEY_PREFIX', 'needs a {hash tag} on Redis Cluster, e.g. {oura-ingest}: every key must sit in one slot');
    }
    if (Boolean(c.PARTNER_WEBHOOK_URL) !== Boolean(c.PARTNER_WEBHOOK_SECRET)) {
      return fail(c.PARTNER_WEBHOOK_URL ? 'PARTNER_WEBHOOK_SECRET' : 'PARTNER_WEBHOOK_URL', 'is required when PARTNER_WEBHOOK_URL or PARTNER_WEBHOOK_SECRET is set: set both (outbound webhooks on) or neither (off)');
    }
    return {
      ...c,
      REDIS_CLUSTER_NODES: clusterNodes,
      REDIS_KEY_PREFIX: c.REDIS_KEY_PREFIX ?? (cluster ? '{oura-ingest}' : 'oura-ingest'),
      OURA_API_BASE_URL: c.OURA_API_BASE_URL.replace(/\/+$/, ''),
      PUBLIC_BASE_URL: c.PUBLIC_BASE_URL.replace(/\/+$/, ''),
      OURA_TOKEN_URL: c.OURA_TOKEN_URL ?? `${c.OURA_API_BASE_URL.replace(/\/+$/, '')}/oauth/token`,
    };
  });
export type Config = z.infer<typeof Config>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Parses the environment once. Empty strings count as unset, so a compose file
 * may pass `VAR=` to mean "use the default". Throws a ConfigError whose message
 * is one line naming the variable and what is wrong with it.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const key of Object.keys(Config.in.shape)) {
    const v = env[key];
    if (v !== undefined && v.trim() !== '') cleaned[key] = v.trim();
  }
  const result = Config.safeParse(cleaned);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const name = String(issue.path[0] ?? 'config');
    const what = issue.code === 'invalid_type' && cleaned[name] === undefined ? 'is required but not set' : issue.message;
    throw new ConfigError(`config: ${name} ${what}`);
  }
  return result.data;
}

/** For tools that only touch the database (`npm run migrate`). */
export function loadDatabaseUrl(env: Record<string, string | undefined> = process.env): string {
  const v = env.DATABASE_URL?.trim();
  if (!v) throw new ConfigError('config: DATABASE_URL is required but not set');
  return v;
}

/** Runs `load`, and on a ConfigError prints its one line and exits 2. */
export function orExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
