/**
 * `npm run demo`: the whole service against the bundled Oura simulator, in one
 * command, with no Oura account and no Docker.
 *
 * 1. its own database (`oura_demo`, dropped and re-created, every migration
 *    applied) on the Postgres of DATABASE_URL, and its own Redis key prefix
 *    (`oura-demo`, cleared) on the Redis of REDIS_URL; both default to the
 *    local services;
 * 2. the simulator in this process, the api (`src/main.ts api`) and a worker
 *    (`src/main.ts worker`) as their own processes, as deployed, sharing one
 *    rate limiter in Redis (all of it dev/stack.ts);
 * 3. three simulated users with some days of history connect through the real
 *    OAuth flow; the backfill on connect loads their history;
 * 4. the application's webhook subscriptions are synced (the simulator
 *    verifies our callback first);
 * 5. a seeded "morning sync" trace (dev/trace.ts) is replayed through the
 *    simulator's control API, so Oura sends signed webhooks for each new and
 *    rewritten document;
 * 6. a summary: documents landed per type (backfill vs webhooks, against
 *    Oura's own count), Oura requests spent (the simulator's request log),
 *    events per request, freshness p50/p99 — then a check that every document
 *    the simulator holds is in Postgres, equal to Oura's. Exit 1 otherwise.
 *
 *   npm run demo -- [--users N] [--history-days N] [--duration S] [--quick] [--compiled] [--no-progress] [--quiet]
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { distRuntime, tsxRuntime } from '../dev/service.js';
import { withDatabase } from '../dev/services.js';
import { startStack, type Stack } from '../dev/stack.js';
import { canonical, percentile } from '../dev/stats.js';
import { morningSync, play, type PlayResult } from '../dev/trace.js';
import { sleep } from '../dev/util.js';
import { syncAppSubscriptions } from '../src/admin/subscriptions.js';
import { DOCUMENT_TYPES, TIME_SERIES, type DocumentType } from '../src/oura/registry.js';
import type { RequestLogEntry as SimRequest } from '../src/sim/state.js';

// ---------------------------------------------------------------- options

const USAGE = `usage: npm run demo -- [options]
  --users N          simulated users (default 3)
  --history-days N   days of history each user has at Oura before connecting (default 14)
  --duration S       length of the morning-sync trace in seconds (default 20)
  --seed N           seed of the simulator and the trace (default 1)
  --quick            a shorter run (2 days of history, a 12 s trace); what the tests use
  --compiled         run the api and the worker compiled, from dist/ as npm run build left it,
                     rather than through tsx
  --database NAME    the demo's database, dropped and re-created (default oura_demo)
  --prefix P         the demo's Redis key prefix, cleared (default oura-demo)
  --no-progress      no progress bars (they are drawn only on a terminal anyway)
  --quiet            only the summary and errors
Postgres and Redis: DATABASE_URL (its server; the demo uses its own database there)
and REDIS_URL, by default postgres://postgres@127.0.0.1:5432/postgres and redis://127.0.0.1:6379.
`;

function fail(message: string, code = 2): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(code);
}

let argv: Record<string, string | boolean | undefined>;
try {
  argv = parseArgs({
    options: {
      users: { type: 'string', default: '3' },
      'history-days': { type: 'string' },
      duration: { type: 'string' },
      seed: { type: 'string', default: '1' },
      quick: { type: 'boolean', default: false },
      compiled: { type: 'boolean', default: false },
      database: { type: 'string', default: 'oura_demo' },
      prefix: { type: 'string', default: 'oura-demo' },
      'no-progress': { type: 'boolean', default: false },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }).values;
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`);
}
if (argv.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function intArg(name: string, fallback: number, min: number, max: number): number {
  const raw = argv[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) fail(`--${name}: expected a whole number from ${min} to ${max} (got "${String(raw)}")`);
  return n;
}

const quick = argv.quick === true;
const USERS = intArg('users', 3, 1, 50);
const HISTORY_DAYS = intArg('history-days', quick ? 2 : 14, 1, 90);
const TRACE_S = intArg('duration', quick ? 12 : 20, 10, 600);
const SEED = intArg('seed', 1, 0, 2 ** 31 - 1);
const DB_NAME = String(argv.database);
const PREFIX = String(argv.prefix);
if (!/^[a-z_][a-z0-9_]{0,62}$/.test(DB_NAME)) fail(`--database: expected a lower-case Postgres name like oura_demo (got "${DB_NAME}")`);
if (!/^[A-Za-z0-9_.-]{1,64}$/.test(PREFIX)) fail(`--prefix: expected 1-64 letters, digits, dots, dashes or underscores (got "${PREFIX}")`);
const QUIET = argv.quiet === true;
const PROGRESS = argv['no-progress'] !== true && !QUIET && process.stderr.isTTY === true;

const SERVER_URL = process.env.DATABASE_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL?.trim() || 'redis://127.0.0.1:6379';
/** What `OURA_APP_RATE_LIMIT` defaults to, and what the simulator enforces: Oura's documented 5000 per 5 minutes. */
const RATE_LIMIT = { limit: 5000, windowS: 300 };
const LOG_FILE = path.join(tmpdir(), `oura-ingest-demo-${PREFIX}.log`);

/** host:port of a connection URL, never its credentials. */
function where(url: string, defaultPort: number): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || defaultPort}`;
  } catch {
    return 'an unparsable URL';
  }
}
const DATABASE_URL = withDatabase(SERVER_URL, DB_NAME);
const currentDb = (() => {
  try {
    return decodeURIComponent(new URL(SERVER_URL).pathname.replace(/^\//, ''));
  } catch {
    return '';
  }
})();
/** Where to run `drop/create database`: the server URL's own database, unless that is the demo's. */
const ADMIN_URL = currentDb && currentDb !== DB_NAME ? SERVER_URL : withDatabase(SERVER_URL, 'postgres');

// ---------------------------------------------------------------- output

const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
const say = (line: string) => {
  if (!QUIET) process.stdout.write(`${line}\n`);
};
const step = (line: string) => say(`✓ ${line}  (${elapsed()})`);

/** One in-place progress bar on stderr (`\r`, no dependency); drawn only on a terminal. */
function createBar(label: string) {
  let drawn = '';
  return {
    update(done: number, total: number, note = '') {
      if (!PROGRESS) return;
      const width = 30;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(frac * width);
      const line = `  ${label} [${'█'.repeat(filled)}${'░'.repeat(width - filled)}] ${String(Math.round(frac * 100)).padStart(3)}%  ${done}/${total}${note ? `  ${note}` : ''}`;
      if (line === drawn) return;
      process.stderr.write(`\r${line}\x1b[K`);
      drawn = line;
    },
    clear() {
      if (drawn) process.stderr.write('\r\x1b[K');
      drawn = '';
    },
  };
}

const sec = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');

// ---------------------------------------------------------------- pre-flight

/** One line naming what is unreachable and how to start it. */
async function preflight(): Promise<void> {
  const probe = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await probe.connect();
  } catch (err) {
    fail(
      `Postgres is not reachable at ${where(SERVER_URL, 5432)} (${(err as Error).message || (err as { code?: string }).code}). ` +
        'Start it (e.g. `sudo service postgresql start`) or point DATABASE_URL at one.',
      1,
    );
  } finally {
    await probe.end().catch(() => {});
  }
  const redis = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  let cause = '';
  redis.on('error', (err: Error) => {
    cause ||= err.message;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    fail(
      `Redis is not reachable at ${where(REDIS_URL, 6379)} (${cause || (err as Error).message}). ` +
        'Start it (e.g. `redis-server --daemonize yes` or `sudo service redis-server start`) or point REDIS_URL at one.',
      1,
    );
  } finally {
    redis.disconnect();
  }
}

// ---------------------------------------------------------------- the run

let stack = null as Stack | null;

/** Throws when a service process died: the demo cannot go on without it. */
function assertAlive(): void {
  for (const c of stack?.children ?? []) {
    if (c.child.exitCode !== null || c.child.signalCode !== null) {
      throw new Error(`the ${c.role} process exited (${c.child.exitCode ?? c.child.signalCode}); its last output:\n${c.tail()}\nfull log: ${LOG_FILE}`);
    }
  }
}

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | null | undefined | false>, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    assertAlive();
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(intervalMs);
  }
}

interface RequestCounts {
  data: number;
  token: number;
  subscriptions: number;
  other: number;
  refused: number;
}

function countRequests(reqs: SimRequest[]): RequestCounts {
  const c: RequestCounts = { data: 0, token: 0, subscriptions: 0, other: 0, refused: 0 };
  for (const r of reqs) {
    // The users' browsers at Oura's consent page: not a request of the service.
    if (r.path.startsWith('/oauth/authorize')) continue;
    if (r.status === 429) c.refused++;
    else if (r.path.startsWith('/v2/usercollection')) c.data++;
    else if (r.path.startsWith('/oauth/token')) c.token++;
    else if (r.path.startsWith('/v2/webhook/subscription')) c.subscriptions++;
    else c.other++;
  }
  return c;
}
const total = (c: RequestCounts) => c.data + c.token + c.subscriptions + c.other;

async function main(): Promise<number> {
  await preflight();
  say(`oura-ingest demo: the service against a simulated Oura (no account, nothing leaves this machine)`);
  say(`  Postgres ${where(SERVER_URL, 5432)}, database ${DB_NAME}; Redis ${where(REDIS_URL, 6379)}, key prefix ${PREFIX}`);

  // -- a clean slate (the demo's database and key prefix, nobody else's); Oura: the simulator, in
  // this process, with Oura's app-wide limit; the service: one api process and one worker process,
  // as deployed. This process reads Postgres and runs the subscription sync with the same
  // composition root (stack.deps).
  rmSync(LOG_FILE, { force: true });
  const s = await startStack({
    label: 'demo',
    database: DB_NAME,
    prefix: PREFIX,
    services: { adminDatabaseUrl: ADMIN_URL, redisUrl: REDIS_URL },
    sim: { seed: SEED, appLimit: RATE_LIMIT },
    env: {
      OURA_APP_RATE_LIMIT: `${RATE_LIMIT.limit}/${RATE_LIMIT.windowS}`,
      // The periodic re-sync would read the users' last days again on the same budget
      // and blur what the counts below attribute to backfill and to webhooks.
      RECONCILE_INTERVAL_S: String(30 * 86_400),
    },
    api: 'process',
    workers: 1,
    runtime: argv.compiled === true ? distRuntime({ checkFresh: false }) : tsxRuntime(),
    logLevel: 'info',
    logFile: LOG_FILE,
    stop: 'graceful',
  });
  stack = s;
  const { apiUrl, deps, pool, sim, simJson } = s;
  step(`database ${DB_NAME} re-created and migrated; ${s.keysCleared} old Redis keys under ${PREFIX}: cleared`);
  step(`Oura simulator on ${sim.url} (app limit ${RATE_LIMIT.limit}/${RATE_LIMIT.windowS} s)`);
  await waitFor('the api to answer /readyz', 60_000, async () => (await fetch(`${apiUrl}/readyz`)).status === 200, 200);
  await waitFor('the worker to listen on the queue', 60_000, async () => (await deps.queue.getWorkersCount()) >= 1, 200);
  const pid = (role: string) => s.children.find((c) => c.role === role)?.child.pid;
  step(`api on ${apiUrl} (pid ${pid('api')}) and worker (pid ${pid('worker')}) ready; their logs: ${LOG_FILE}`);

  // -- users: created at Oura with history, then connected through /oauth/start → consent → /oauth/callback
  const connectStartedAt = Date.now();
  const userIds: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const simUser = ((await simJson('POST', '/_sim/users', { historyDays: HISTORY_DAYS })) as { id: string }).id;
    // Each user is their own browser (the connect routes are rate limited per client address).
    const userId = await s.connectUser(simUser, { clientAddress: `10.0.${(i >> 8) & 255}.${i & 255}` });
    if (userId !== simUser) throw new Error(`/oauth/callback connected ${userId}, not ${simUser}`);
    userIds.push(simUser);
  }
  step(`${USERS} simulated users connected through OAuth, each with ${HISTORY_DAYS} days of history at Oura`);

  // What Oura holds before any webhook: the history the backfill must load.
  const history = new Map<DocumentType, number>();
  for (const userId of userIds) {
    const u = (await simJson('GET', `/_sim/users/${userId}`)) as { documents: Record<string, number> };
    for (const type of DOCUMENT_TYPES) history.set(type, (history.get(type) ?? 0) + (u.documents[type] ?? 0));
  }

  // -- the backfill on connect, with its own progress
  const backfillBar = createBar('backfill');
  const backfill = await waitFor('the backfill of every user', 180_000, async () => {
    const { rows } = await pool.query<{ status: string; done: number; total: number; error: string | null }>(
      `select status, windows_done as done, windows_total as total, error from oura.backfill_progress where user_id = any($1)`,
      [userIds],
    );
    const failed = rows.find((r) => r.status === 'failed');
    if (failed) throw Object.assign(new Error(`a backfill failed: ${failed.error}`), { fatal: true });
    const done = rows.reduce((a, r) => a + r.done, 0);
    const windows = rows.reduce((a, r) => a + r.total, 0);
    backfillBar.update(done, windows, 'windows');
    return rows.length > 0 && rows.every((r) => r.status === 'done') ? { windows } : null;
  }).finally(() => backfillBar.clear());
  const backfillDoneAt = Date.now();
  const afterBackfill = await countRows(pool, userIds);
  const historyTotal = [...history.values()].reduce((a, b) => a + b, 0);
  const backfillLanded = DOCUMENT_TYPES.reduce((a, t) => a + (afterBackfill.get(t) ?? 0), 0);
  step(`backfill done: ${backfillLanded} of ${historyTotal} historical documents landed (${backfill.windows} windows, ${sec(backfillDoneAt - connectStartedAt)})`);

  // -- webhook subscriptions: one per (event type, data type); the simulator verifies our callback
  const subsStartedAt = Date.now();
  const subsBar = createBar('subscribe');
  const sync = await syncAppSubscriptions(deps, { onProgress: (done, n) => subsBar.update(done, n) }).finally(() => subsBar.clear());
  if (sync.failed.length > 0) {
    const f = sync.failed[0]!;
    throw new Error(`subscription sync: ${sync.failed.length} failed, e.g. ${f.event_type}/${f.data_type}: ${f.error}`);
  }
  const subscriptions = ((await simJson('GET', '/_sim/subscriptions')) as unknown[]).length;
  const subsDoneAt = Date.now();
  step(`${subscriptions} webhook subscriptions at Oura, each verified against ${apiUrl}/webhooks/oura (created ${sync.created.length})`);

  // -- the morning sync: Oura creates and rewrites documents and sends a signed webhook for each
  const trace = morningSync('demo', USERS, TRACE_S * 1000, SEED);
  await simJson('DELETE', '/_sim/deliveries');
  say(`  replaying a morning sync: ${trace.objects.length} new documents, ${trace.events} webhooks over ${TRACE_S} s`);
  const traceBar = createBar('webhooks');
  let tracing = true;
  const eventCounts = async () => {
    // Pending: deliveries not yet admitted from the inbox, and events not yet served.
    const { rows } = await pool.query<{ pending: string; finished: string }>(
      `select count(*) filter (where status in ('queued', 'parked'))
                + (select count(*) from oura.webhook_inbox where user_id = any($1)) as pending,
              count(*) filter (where status not in ('queued', 'parked')) as finished
         from oura.webhook_events where user_id = any($1)`,
      [userIds],
    );
    return { pending: Number(rows[0]!.pending), finished: Number(rows[0]!.finished) };
  };
  const drawTrace = async () => {
    while (tracing) {
      const sent = sim.state.deliveries.length;
      const { finished } = await eventCounts().catch(() => ({ finished: 0 }));
      traceBar.update(finished, trace.events, `stored · ${sent} sent`);
      await sleep(200);
    }
  };
  const drawing = PROGRESS ? drawTrace() : Promise.resolve();
  let played: PlayResult;
  let drainedAt: number;
  try {
    played = await play(trace, sim.url, userIds);
    assertAlive();
    await waitFor('the worker to process every webhook event', 120_000, async () => (await eventCounts()).pending === 0, 100);
    drainedAt = Date.now();
  } finally {
    tracing = false;
    await drawing;
    traceBar.clear();
  }
  if (played.errors.length) throw new Error(`the trace could not be replayed: ${played.errors.length} errors, e.g. ${played.errors[0]}`);
  const deliveries = (await simJson('GET', '/_sim/deliveries')) as Array<{ status: number | null }>;
  const delivered = deliveries.filter((d) => d.status === 200).length;
  step(`${delivered} of ${deliveries.length} signed webhooks accepted; every event processed ${sec(drainedAt - played.finishedAt)} after the last`);

  // -- measure: Postgres, and the simulator's request log
  const final = await countRows(pool, userIds);
  const requests = (await simJson('GET', `/_sim/requests?since=${connectStartedAt}`)) as SimRequest[];
  const phases = {
    backfill: countRequests(requests.filter((r) => r.t < backfillDoneAt)),
    subscriptions: countRequests(requests.filter((r) => r.t >= subsStartedAt && r.t <= subsDoneAt)),
    webhooks: countRequests(requests.filter((r) => r.t >= played.startedAt - 200 && r.t <= drainedAt)),
  };
  const whole = countRequests(requests);
  const { rows: events } = await pool.query<{ status: string; ms: string | null }>(
    `select status, extract(epoch from (processed_at - received_at)) * 1000 as ms from oura.webhook_events where user_id = any($1)`,
    [userIds],
  );
  const freshness = events.filter((e) => e.status === 'done' && e.ms !== null).map((e) => Number(e.ms));
  const notDone = events.filter((e) => e.status !== 'done');

  // -- verify: every document Oura holds is in Postgres, equal to Oura's, and nothing else is
  const problems: string[] = [];
  const atOura = new Map<DocumentType, number>();
  const current = new Map<DocumentType, boolean>();
  let checked = 0;
  for (const type of DOCUMENT_TYPES) {
    let ok = true;
    let n = 0;
    for (const userId of userIds) {
      const docs = (await simJson('GET', `/_sim/users/${userId}/documents/${type}`)) as Array<{ id: string }>;
      n += docs.length;
      const { rows } = await pool.query<{ id: string; document: unknown }>(`select id, document from oura."${type}" where user_id = $1`, [userId]);
      const stored = new Map(rows.map((r) => [r.id, canonical(r.document)]));
      for (const d of docs) {
        checked++;
        const s = stored.get(d.id);
        if (s === undefined) problems.push(`${type} ${d.id} of user ${userId} is at Oura but not in Postgres`);
        else if (s !== canonical(d)) problems.push(`${type} ${d.id} of user ${userId} differs from Oura's`);
        if (s === undefined || s !== canonical(d)) ok = false;
        stored.delete(d.id);
      }
      for (const id of stored.keys()) {
        problems.push(`${type} ${id} of user ${userId} is in Postgres but not at Oura`);
        ok = false;
      }
    }
    atOura.set(type, n);
    current.set(type, ok);
  }
  if (delivered < deliveries.length) {
    const statuses = [...new Set(deliveries.filter((d) => d.status !== 200).map((d) => String(d.status ?? 'no answer')))].join(', ');
    problems.push(`${deliveries.length - delivered} of ${deliveries.length} webhook deliveries were refused by the api (${statuses})`);
  }
  if (notDone.length) problems.push(`${notDone.length} webhook events did not end as done (${[...new Set(notDone.map((e) => e.status))].join(', ')})`);

  // -- the summary
  const traceByType = new Map<DocumentType, number>();
  for (const o of played.objects) traceByType.set(o.type, (traceByType.get(o.type) ?? 0) + 1);
  const rows = DOCUMENT_TYPES.filter((t) => (atOura.get(t) ?? 0) > 0 || (final.get(t) ?? 0) > 0).map((t) => {
    const landedBackfill = afterBackfill.get(t) ?? 0;
    const landedWebhooks = (final.get(t) ?? 0) - landedBackfill;
    return [t, String(landedBackfill), String(landedWebhooks), String(final.get(t) ?? 0), String(atOura.get(t) ?? 0), current.get(t) ? 'yes' : 'NO'];
  });
  const sum = (m: Map<DocumentType, number>) => DOCUMENT_TYPES.reduce((a, t) => a + (m.get(t) ?? 0), 0);
  const finalTotal = sum(final);
  const ouraTotal = sum(atOura);
  rows.push([
    'total',
    String(backfillLanded),
    String(finalTotal - backfillLanded),
    String(finalTotal),
    String(ouraTotal),
    problems.length === 0 ? 'yes' : 'NO',
  ]);
  const header = ['document type', 'backfill', 'webhooks', 'in Postgres', 'at Oura', 'equal'];
  const docTable = table(header, rows, [false, true, true, true, true, false]);

  const seriesRows = await Promise.all(
    TIME_SERIES.map(async (s) => {
      const { rows: r } = await pool.query<{ n: string }>(`select count(*) as n from oura."${s}" where user_id = any($1)`, [userIds]);
      return `${s} ${Number(r[0]!.n)}`;
    }),
  );
  const reqCell = (c: RequestCounts) =>
    `${total(c)}  (${c.data} data, ${c.token} token, ${c.subscriptions} subscription${c.other ? `, ${c.other} other` : ''}${c.refused ? `; ${c.refused} refused 429` : ''})`;
  const metrics = table(
    ['', ''],
    [
      ['users / trace', `${USERS} users, ${HISTORY_DAYS} days of history each; ${trace.objects.length} new documents, ${trace.events} webhook events in ${TRACE_S} s`],
      ['Oura requests: connect + backfill', reqCell(phases.backfill)],
      ['Oura requests: subscription sync', reqCell(phases.subscriptions)],
      ['Oura requests: webhooks', reqCell(phases.webhooks)],
      ['Oura requests: whole run', `${reqCell(whole)} of ${RATE_LIMIT.limit} per ${RATE_LIMIT.windowS} s`],
      [
        'events per request',
        `${(delivered / Math.max(1, phases.webhooks.data)).toFixed(2)}  (${delivered} webhook events served by ${phases.webhooks.data} data requests)`,
      ],
      ['freshness p50 / p99', `${sec(percentile(freshness, 50))} / ${sec(percentile(freshness, 99))}  (webhook received → document stored, ${freshness.length} events)`],
      ['time series (backfill), rows', seriesRows.join(', ')],
    ],
    [false, false],
    false,
  );
  process.stdout.write(
    [
      '',
      'Documents landed in Postgres, per type. "backfill": loaded when the users connected (their history at Oura);',
      '"webhooks": landed during the morning sync, fetched after Oura\'s signed webhooks; "equal": every row is Oura\'s document.',
      '',
      docTable,
      '',
      metrics,
      '',
    ].join('\n'),
  );

  if (problems.length) {
    process.stderr.write(`demo: FAILED: ${problems.length} problems in database ${DB_NAME}:\n${problems.slice(0, 20).map((p) => `  ${p}`).join('\n')}\n`);
    if (problems.length > 20) process.stderr.write(`  … and ${problems.length - 20} more\n`);
    process.stderr.write(`the service's logs: ${LOG_FILE}\n`);
    return 1;
  }
  process.stdout.write(
    `✓ all ${checked} documents the simulator holds are in Postgres, each equal to Oura's (${elapsed()})\n` +
      `  look: psql ${psqlUrl()} -c 'select id, user_id, day, score from oura.daily_sleep order by day'\n`,
  );
  return 0;
}

/** Documents per type of the given users, as a partner would count them. */
async function countRows(pool: pg.Pool, userIds: string[]): Promise<Map<DocumentType, number>> {
  const unions = DOCUMENT_TYPES.map((t) => `select '${t}' as type, count(*) as n from oura."${t}" where user_id = any($1)`).join(' union all ');
  const { rows } = await pool.query<{ type: DocumentType; n: string }>(unions, [userIds]);
  return new Map(rows.map((r) => [r.type, Number(r.n)]));
}

function psqlUrl(): string {
  const u = new URL(DATABASE_URL);
  u.password = '';
  return u.toString();
}

function table(header: string[], rows: string[][], right: boolean[], withHeader = true): string {
  const widths = header.map((h, i) => Math.max(withHeader ? h.length : 0, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => `  ${cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('   ')}`.trimEnd();
  const rule = `  ${widths.map((w) => '─'.repeat(w)).join('   ')}`;
  if (!withHeader) return rows.map(line).join('\n');
  return [line(header), rule, ...rows.slice(0, -1).map(line), rule, line(rows[rows.length - 1]!)].join('\n');
}

// ---------------------------------------------------------------- entry

// Closing the stack stops the service (SIGTERM: it drains and exits) and the simulator, and
// clears the key prefix; the data stays in the demo's database to be looked at.
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\ndemo: ${sig}: stopping the service and the simulator\n`);
    void Promise.resolve(stack?.close())
      .catch((err: Error) => process.stderr.write(`demo: ${err.message}\n`))
      .finally(() => process.exit(130));
  });
}

let code = 1;
try {
  code = await main();
} catch (err) {
  if (!interrupted) {
    process.stderr.write(`\ndemo: FAILED: ${(err as Error).message}\n`);
    if (stack) process.stderr.write(`the service's logs: ${LOG_FILE}\n`);
  }
}
// After a signal, its handler cleans up and exits.
if (!interrupted) {
  const stopping = Date.now();
  await stack?.close();
  const badExit = (stack?.children ?? []).filter((c) => c.child.exitCode !== 0);
  if (badExit.length) {
    process.stderr.write(`demo: ${badExit.map((c) => `${c.role} exited ${c.child.exitCode ?? c.child.signalCode}`).join(', ')}; logs: ${LOG_FILE}\n`);
    code ||= 1;
  } else if (code === 0) {
    say(`✓ api and worker stopped cleanly (SIGTERM, exit 0, ${sec(Date.now() - stopping)}); simulator closed`);
  }
  process.exit(code);
}
