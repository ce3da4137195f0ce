/**
 * `npm run bench:capacity`: how many users one Oura application can serve.
 *
 * WHAT IT DOES. It plays one simulated day in the life of a user population
 * (bench/capacity-model.ts: morning syncs over time zones with Oura's
 * create-then-update bursts, daytime syncs, workouts, tags and sessions,
 * edits and deletes of older documents, new connections with a 90-day
 * backfill, token refreshes) against the Oura simulator, which enforces the
 * application's rate limit; the service runs as deployed (compiled, one api
 * and worker processes, NODE_OPTIONS from docker-compose.yml) on a fresh
 * database and Redis prefix. It then checks each clause of the goal:
 *   - live documents fresh within 15 minutes at the peak hour (p99);
 *   - every active user's time series read at least daily;
 *   - their recent days reconciled at least weekly;
 *   - new connections backfilled within 24 h;
 *   - nothing lost: every user's documents in Postgres equal the simulator's.
 *
 * METHOD.
 *   - Scale: N simulated users stand for s × N real users, and the budget is
 *     divided by s (5 000 / 300 s becomes 5 000 / s per 300 s). Each simulated
 *     user behaves as one real user; only the budget per user is what a
 *     population of s × N would have.
 *   - Time: the day is compressed c-fold (86 400 s in `--day-s` wall
 *     seconds), and so is every timer of the service that matters here
 *     (passed through its environment: freshness target, coalescing quiet
 *     time, scarce-budget threshold, reconcile and time-series intervals,
 *     planner period, retry polls, backoff, sweep grace, webhook age), the simulator's
 *     token lifetime, and the budget's rate (× c). The limiter's rate is
 *     kept and its window stretched to 10 s, because at W = 300/c ≈ 1 s its
 *     fixed safety margin (≥ 250 ms) would take a fifth of the budget; the
 *     service spaces requests evenly (W/N apart), so the window's length
 *     changes nothing else for it.
 *   - Start: every user has 14 days of history, already in Postgres (copied
 *     in before the clock starts, costing no budget), and time series in
 *     Oura for the last 24 h only (as if read daily until then). The
 *     cadence is in its steady state: each user's last reconciliation is
 *     spread evenly over the past week and their last time-series read over
 *     the past day, so users fall due through the day as they would. Users connect through the real OAuth flow on a setup api (no
 *     budget); the workers start when the day does.
 *   - Measures: requests by purpose from the service's counter
 *     oura_ingest_oura_requests_total (each process's /metrics), checked
 *     against the simulator's request log; freshness from
 *     oura.webhook_events (received → done) × c; cadence from the
 *     simulator's request log (per user: time-series reads; a reconcile pass
 *     = collection reads of ≥ 8 document types reaching back ≥ 2 days, no
 *     two more than 6 simulated hours apart); backfills from
 *     oura.backfill_progress; the end
 *     state by comparing every user's documents with the simulator's.
 *   - The largest population: a search over many full days does not fit in
 *     15 minutes, so the day runs at the goal's 100 000 users, then once
 *     more (`auto`) at the population estimated from that day, which checks
 *     the estimate; the report gives the largest population that met every
 *     clause and which clause binds. The estimate: the budget divided by
 *     the requests a user-day needs (live and token and backfill as
 *     measured, one read of each time series a day, a reconcile pass every 7
 *     days), and the peak hour's budget divided by the peak hour's demand
 *     (its changes × the live requests per change measured, plus the
 *     background's hourly need); the smaller binds.
 *
 * ASSUMPTIONS. Per-user behaviour does not depend on the population (the
 * service's choices depend on the budget's pressure, which scaling keeps);
 * the model's numbers (capacity-model.ts, each with its reason); one day
 * stands for the steady state; the simulator answers in milliseconds where
 * Oura takes hundreds.
 *
 * WHAT IT CANNOT SHOW. Anything that grows with the absolute population:
 * Postgres and Redis at 100 000 users' rows, keys and queue lengths, the
 * api's and workers' CPU for s × as many webhooks (bench:ingest measures the
 * api's ceiling), worker concurrency for s × as many pairs in flight.
 * Fixed latencies (a job's processing, a queue hop, the 20 ms intake batch,
 * the simulator's answers, the workers' 5 s start) are stretched c-fold in
 * simulated time, so freshness is pessimistic by about c × those latencies;
 * and the simulator, the driver, the service, Postgres and Redis share two
 * cores, so a busy machine slows the service's side as well (the report
 * gives the CPU figures and this process's event-loop delay). Timers shorter than 1 s or 1 ms after
 * compression are rounded up (the report lists the values passed). Week-long
 * cadences are inferred from one day's rate. Time series are checked for
 * cadence, not compared row by row.
 *
 *   npm run bench:capacity -- [--population 100000,auto] [--users 500] [--day-s 240] [--workers 4] [--seed 1] [--floors SPEC] [--json FILE] [--svg FILE]
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DOCUMENT_TYPES, TIME_SERIES, documentTypes, type DocumentType } from '../src/oura/registry.js';
import { isoDay } from '../src/dates.js';
import { serviceNodeOptions } from '../dev/deployment.js';
import { builtRuntime, compileService, repoRoot, type Runtime } from '../dev/service.js';
import { startStack, type Stack } from '../dev/stack.js';
import { canonical, maxInRollingWindow, percentile } from '../dev/stats.js';
import { eventually, freePort } from '../dev/util.js';
import { SECRETS, machineCpu, processCpuS, sampleRss } from './stack.js';
import { DAY_MS, EVENTS_PER_USER_DAY, MODEL, REAL_LIMIT, dayTrace, type Action, type DayTrace } from './capacity-model.js';
import { budgetSvg } from './capacity-svg.js';
import type { RequestLogEntry as SimRequest } from '../src/sim/state.js';

// ---------------------------------------------------------------- options

const { values: argv } = parseArgs({
  options: {
    population: { type: 'string', default: '100000,auto' },
    users: { type: 'string', default: '500' },
    'day-s': { type: 'string', default: '240' },
    workers: { type: 'string', default: '4' },
    seed: { type: 'string', default: '1' },
    floors: { type: 'string' },
    'drain-s': { type: 'string', default: '60' },
    'log-level': { type: 'string', default: 'warn' },
    'log-file': { type: 'string' },
    json: { type: 'string' },
    svg: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (argv.help) {
  process.stdout.write(`usage: npm run bench:capacity -- [options]
  --population P[,P2…]  real users each day stands for, at Oura's 5000/300 s, one day each (default 100000,auto);
                        "auto": a day at the population estimated from the previous day
  --users N             simulated users (default 500): each stands for P/N real users
  --day-s S             wall seconds of the simulated day (default 240: time × 360)
  --workers N           worker processes (default 4)
  --seed N              seed of the population's day (default 1)
  --floors SPEC         BUDGET_FLOORS for the service, e.g. backfill=0.1,timeseries=0.05,reconcile=0.05 (default: the service's own)
  --drain-s S           after the day, longest wait for the backlog and backfills to finish (default 60)
  --log-level L         service log level (default warn); --log-file FILE keeps the service's logs
  --json FILE           also write the results as JSON (and the plot next to it, FILE.svg)
  --svg FILE            where to write the plot of the day (default: next to --json, else in ${tmpdir()})
`);
  process.exit(0);
}
function num(s: string, name: string, { int = false, min = 1 } = {}): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < min || (int && !Number.isInteger(n))) throw new Error(`--${name}: expected ${int ? 'an integer' : 'a number'} ≥ ${min} (got "${s}")`);
  return n;
}
const users = num(argv.users!, 'users', { int: true });
const daySeconds = num(argv['day-s']!, 'day-s', { min: 30 });
const workers = num(argv.workers!, 'workers', { int: true });
const seed = num(argv.seed!, 'seed', { int: true, min: 0 });
const drainMs = num(argv['drain-s']!, 'drain-s', { min: 0 }) * 1000;
const populations = argv.population!.split(',').map((p) => p.trim());
for (const [i, p] of populations.entries()) if (!(p === 'auto' && i > 0)) num(p, 'population', { int: true });

/** Time compression: simulated seconds per wall second. */
const C = 86_400 / daySeconds;
/** The limiter's window in wall seconds (see METHOD: long enough for a 2.5 % margin). */
const WINDOW_S = 10;
const RECONCILE_DAYS = 3;
/** Goal clauses, in simulated seconds. */
const FRESH_P99_S = 15 * 60;
const SERIES_EVERY_S = 86_400;
const RECONCILE_EVERY_DAYS = 7;
const BACKFILL_WITHIN_S = 86_400;

const log = (msg: string) => process.stderr.write(`[bench:capacity ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const simH = (wallMs: number) => (wallMs * C) / 3_600_000;

/** The service's timers, compressed c-fold (not below `min`), as environment values. */
function compressedEnv(): Record<string, string> {
  const s = (realS: number, min = 1) => String(Math.max(min, Math.round(realS / C)));
  const ms = (realMs: number, min = 1) => String(Math.max(min, Math.round(realMs / C)));
  return {
    FRESHNESS_TARGET_S: s(300),
    COALESCE_QUIET_MS: ms(6000),
    // Jobs set aside look again this soon; not below 20 ms, where polling would cost more CPU than it saves.
    EVENT_RETRY_MS: ms(200, 20),
    SCARCE_BACKLOG_MS: ms(1500),
    ...(argv.floors ? { BUDGET_FLOORS: argv.floors } : {}),
    TIMESERIES_INTERVAL_S: s(86_400),
    TIMESERIES_MIN_INTERVAL_S: s(3600),
    RECONCILE_INTERVAL_S: s(604_800, 60),
    RECONCILE_MIN_INTERVAL_S: s(21_600),
    RECONCILE_DAYS: String(RECONCILE_DAYS),
    PLANNER_INTERVAL_MS: ms(15_000, 1000),
    BACKFILL_DAYS: String(MODEL.newConnections.backfillDays),
    JOB_BACKOFF_MS: ms(2000, 10),
    SWEEP_GRACE_S: s(120),
    WEBHOOK_MAX_AGE_S: s(7200, 10),
  };
}

/** The budget of `population` real users' share, scaled to `users` and compressed: N per WINDOW_S. */
function scaledLimit(population: number) {
  const realRate = REAL_LIMIT.limit / REAL_LIMIT.windowS;
  const limit = Math.max(1, Math.round(((realRate * C * users) / population) * WINDOW_S));
  // The population the rounded limit stands for.
  const effective = (realRate * C * users) / (limit / WINDOW_S);
  return { limit, windowS: WINDOW_S, population: Math.round(effective), scale: effective / users };
}

// ---------------------------------------------------------------- measuring helpers

type Counts = Record<string, number>;

/** Sums oura_ingest_oura_requests_total by purpose: accepted answers, and 429s apart. */
function parseRequests(text: string, into: { ok: Counts; refused: Counts }): void {
  for (const line of text.split('\n')) {
    if (!line.startsWith('oura_ingest_oura_requests_total{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.lastIndexOf('}'));
    const purpose = /purpose="([^"]*)"/.exec(labels)?.[1] ?? 'other';
    const status = /status="([^"]*)"/.exec(labels)?.[1] ?? '';
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    const bucket = status === '429' ? into.refused : into.ok;
    bucket[purpose] = (bucket[purpose] ?? 0) + v;
  }
}

/** Each process's last counts: a scrape that fails (a process busy or not yet listening) keeps them, so the sums never go back. */
const lastScrape = new Map<string, { ok: Counts; refused: Counts }>();

async function scrape(urls: string[]): Promise<{ ok: Counts; refused: Counts }> {
  await Promise.all(
    urls.map(async (u) => {
      try {
        const res = await fetch(u, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) return;
        const mine = { ok: {} as Counts, refused: {} as Counts };
        parseRequests(await res.text(), mine);
        lastScrape.set(u, mine);
      } catch {
        /* its last counts stand until the next scrape */
      }
    }),
  );
  const out = { ok: {} as Counts, refused: {} as Counts };
  for (const u of urls) {
    const m = lastScrape.get(u);
    if (!m) continue;
    for (const k of ['ok', 'refused'] as const) for (const [p, v] of Object.entries(m[k])) out[k][p] = (out[k][p] ?? 0) + v;
  }
  return out;
}

const sum = (c: Counts) => Object.values(c).reduce((a, b) => a + b, 0);
const diff = (a: Counts, b: Counts): Counts => Object.fromEntries([...new Set([...Object.keys(a), ...Object.keys(b)])].map((k) => [k, (a[k] ?? 0) - (b[k] ?? 0)]));

async function parallel<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

async function tableBytes(stack: Stack): Promise<Record<string, number>> {
  const { rows } = await stack.pool.query<{ relname: string; bytes: string }>(
    `select c.relname, pg_total_relation_size(c.oid) as bytes
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'oura' and c.relkind = 'r'`,
  );
  return Object.fromEntries(rows.map((r) => [r.relname, Number(r.bytes)]));
}

function bytesGroups(before: Record<string, number>, after: Record<string, number>) {
  const g = { documents: 0, series: 0, events: 0, other: 0 };
  for (const [t, b] of Object.entries(after)) {
    const d = b - (before[t] ?? 0);
    if ((DOCUMENT_TYPES as readonly string[]).includes(t)) g.documents += d;
    // The series are partitioned by month (src/db/partitions.ts): heartrate_2026_12, heartrate_before_partitioning, …
    else if (TIME_SERIES.some((s) => t === s || t.startsWith(`${s}_`))) g.series += d;
    else if (t === 'webhook_events' || t === 'webhook_inbox') g.events += d;
    else g.other += d;
  }
  return g;
}

// ---------------------------------------------------------------- one day

interface Sample {
  wallMs: number;
  ok: Counts;
  refused: Counts;
  queued: number;
  oldestMs: number | null;
  backfillJobs: number;
}

interface DayResult {
  population: number;
  requestedPopulation: number;
  scale: number;
  limit: { limit: number; windowS: number };
  env: Record<string, string>;
  trace: { users: number; events: number; changes: number; newConnections: number; peakHour: number; peakHourChanges: number };
  driver: { actions: number; errors: number; skipped: number; maxLagMs: number; firstErrors: string[] };
  requests: {
    byPurpose: Counts;
    perUserDay: Counts;
    total: number;
    simAccepted: number;
    lowerBoundPerUserDay: number;
    refused429: number;
    rollingMax: number;
  };
  freshness: { peakHour: number; peakEvents: number; p50S: number; p99S: number; dayP50S: number; dayP99S: number; notDone: number; events: number };
  backlog: Array<{ fromH: number; maxQueued: number; maxOldestMin: number; maxBackfillJobs: number }>;
  series: { users: number; readUsers: number; readsPerUserDay: number; medianGapH: number | null; maxGapH: number | null };
  reconcile: { passes: number; users: number; requestsPerPass: number | null; cadenceDays: number | null; reconciledAtUsers: number | null };
  backfill: Array<{ connectedAtH: number; doneAfterH: number | null; windowsDone: number; windowsTotal: number }>;
  rss: Record<string, { before: number; peak: number }>;
  bytes: { perUserDay: number; documents: number; series: number; events: number; other: number };
  endState: { users: number; equal: number; missing: number; extra: number; different: number };
  /** What was still waiting when the drain gave up (null: drained). */
  leftAfterDrain: string | null;
  clauses: Array<{ name: string; met: boolean; detail: string }>;
  estimate: { dayUsers: number; peakUsers: number; users: number; binds: string; needPerUserDay: Counts };
  svg: string | null;
  /** CPU over the day: the machine's busy share, and cores used by the worker processes, the api and this process (simulator and driver). */
  cpu: { machineBusy: number | null; workerCores: number | null; apiCores: number | null; benchCores: number; benchLoopDelayP99Ms: number; benchLoopDelayMaxMs: number };
  samples: Array<{ h: number; requests: Counts; queued: number; backfillJobs: number }>;
  wallS: number;
}

/** Connects simulated users through the setup api (no budget), each from a browser of its own. */
async function connectExisting(stack: Stack, trace: DayTrace, tokenTtlS: number): Promise<string[]> {
  const ids = trace.offsets.map((offset) => {
    const user = stack.sim.state.createUser({ historyDays: MODEL.historyDays, offset });
    // Their time series as read up to a day ago: Oura holds the samples since then (see MODEL.seriesUnreadH).
    user.seriesFrom = Date.now() - MODEL.seriesUnreadH * 3_600_000;
    return user.id;
  });
  // Token lifetimes spread over the day: batch b's tokens live (b+1)/B of it.
  const batches = 12;
  for (let b = 0; b < batches; b++) {
    await stack.simJson('PATCH', '/_sim/config', { accessTokenTtlS: Math.max(1, Math.round((tokenTtlS * (b + 1)) / batches)) });
    const slice = ids.filter((_, i) => i % batches === b);
    await parallel(slice, 8, async (id) => {
      const n = ids.indexOf(id) + 1;
      await stack.connectUser(id, { clientAddress: `10.1.${(n >> 8) & 255}.${n & 255}` });
    });
  }
  await stack.simJson('PATCH', '/_sim/config', { accessTokenTtlS: tokenTtlS });
  return ids;
}

/** Copies every user's documents from the simulator into Postgres, as if already synced. */
async function seedDocuments(stack: Stack, ids: string[]): Promise<number> {
  let n = 0;
  const work = ids.flatMap((id) => DOCUMENT_TYPES.map((type) => ({ id, type })));
  await parallel(work, 6, async ({ id, type }) => {
    n += await stack.deps.documents.upsert(
      type,
      id,
      stack.sim.state.listDocs(id, type).map((s) => s.doc),
    );
  });
  return n;
}

interface PlayState {
  errors: string[];
  skipped: number;
  maxLagMs: number;
  actions: number;
  connections: Array<{ userId: string; atWall: number }>;
}

/** Plays the day's actions on the compressed clock, through the simulator's control API (each change sends its webhook). */
async function playDay(stack: Stack, trace: DayTrace, ids: string[], t0: number, stopAt: () => boolean): Promise<PlayState> {
  const st: PlayState = { errors: [], skipped: 0, maxLagMs: 0, actions: 0, connections: [] };
  const docOf = new Map<number, Promise<string | null>>();
  const today = Date.now();
  const pickRng = { i: seed * 7919 };
  const pick = <T>(xs: T[]): T => xs[(pickRng.i = (pickRng.i * 1103515245 + 12345) >>> 0) % xs.length]!;
  const call = async (method: string, route: string, body?: unknown) => {
    const res = await fetch(`${stack.sim.url}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${route.replace(/users\/[^/]+/, 'users/…')} → ${res.status}: ${text.slice(0, 120)}`);
    return text ? (JSON.parse(text) as { id?: string }) : null;
  };
  const olderDoc = (userId: string, type: DocumentType): string | null => {
    const lo = isoDay(today - MODEL.older.ageDays[1] * DAY_MS);
    const hi = isoDay(today - MODEL.older.ageDays[0] * DAY_MS);
    const field = documentTypes[type].dateField;
    const docs = stack.sim.state
      .listDocs(userId, type)
      .filter((s) => !field || (typeof s.doc[field] === 'string' && (s.doc[field] as string).slice(0, 10) >= lo && (s.doc[field] as string).slice(0, 10) <= hi));
    return docs.length ? pick(docs).doc.id : null;
  };
  let browser = 0;
  const run = async (a: Action): Promise<void> => {
    if (a.op === 'connect') {
      const user = stack.sim.state.createUser({ historyDays: MODEL.newConnections.backfillDays, offset: a.offset });
      const b = ++browser;
      st.connections.push({ userId: user.id, atWall: Date.now() });
      // A failed connection (the api answers 502 "try connecting again") is tried again, as a user would, twice at most.
      for (let attempt = 1; ; attempt++) {
        try {
          await stack.connectUser(user.id, { clientAddress: `10.2.${(b >> 8) & 255}.${b & 255}` });
          return;
        } catch (err) {
          if (attempt >= 3) throw err;
          st.errors.push(`connect attempt ${attempt}: ${(err as Error).message}`);
        }
      }
    }
    const userId = ids[a.user]!;
    const base = `/_sim/users/${userId}/documents/${a.type}`;
    switch (a.op) {
      case 'create': {
        const p = call('POST', base, { notify: true }).then((d) => d?.id ?? null);
        docOf.set(a.key, p);
        await p;
        return;
      }
      case 'update': {
        const id = await docOf.get(a.key);
        if (!id) return void st.skipped++;
        await call('PATCH', `${base}/${id}`, { notify: true });
        return;
      }
      case 'update-latest': {
        const docs = stack.sim.state.listDocs(userId, a.type);
        const latest = docs[docs.length - 1];
        if (!latest) return void st.skipped++;
        await call('PATCH', `${base}/${latest.doc.id}`, { notify: true });
        return;
      }
      case 'edit-older':
      case 'delete-older': {
        const id = olderDoc(userId, a.type);
        if (!id) return void st.skipped++;
        if (a.op === 'edit-older') await call('PATCH', `${base}/${id}`, { notify: true });
        else await call('DELETE', `${base}/${id}?notify=true`);
        return;
      }
    }
  };
  const pending: Promise<void>[] = [];
  /** Rewrites wait for their document's create (and earlier rewrites) before they run. */
  const chains = new Map<number, Promise<void>>();
  for (const a of trace.actions) {
    if (stopAt()) break;
    const due = t0 + a.at / C;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    st.maxLagMs = Math.max(st.maxLagMs, Date.now() - due);
    st.actions++;
    const go = () =>
      run(a).catch((err: Error) => {
        st.errors.push(err.message);
      });
    if (a.op === 'create' || a.op === 'update') {
      const p = (chains.get(a.key) ?? Promise.resolve()).then(go);
      chains.set(a.key, p);
      pending.push(p);
    } else pending.push(go());
  }
  await Promise.all(pending);
  return st;
}

async function runDay(requestedPopulation: number, runtime: Runtime, trace: DayTrace, svgPath: string | null): Promise<DayResult> {
  const started = Date.now();
  lastScrape.clear();
  const lim = scaledLimit(requestedPopulation);
  const env = { OURA_APP_RATE_LIMIT: `${lim.limit}/${lim.windowS}`, ...compressedEnv() };
  const tokenTtlS = Math.max(1, Math.round(MODEL.tokenLifetimeS / C));
  log(
    `day for ${lim.population} real users: ${users} simulated × ${lim.scale.toFixed(1)}, budget ${lim.limit}/${lim.windowS} s (${(lim.limit / lim.windowS).toFixed(2)} req/s), ` +
      `day = ${daySeconds} s (× ${C.toFixed(0)})`,
  );
  const stack = await startStack({
    label: 'capacity',
    services: { adminDatabaseUrl, redisUrl },
    secrets: SECRETS,
    sim: { appLimit: null, seed },
    env,
    api: 'process',
    workers: 0,
    runtime,
    logLevel: argv['log-level']!,
    logFile: argv['log-file'],
    setupApi: true,
    stop: 'graceful',
  });
  const onSignal = () => {
    log('interrupted: cleaning up');
    void stack.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await stack.ready();
    await stack.subscribeAll(DOCUMENT_TYPES);
    const ids = await connectExisting(stack, trace, tokenTtlS);
    await stack.closeSetup();
    const seeded = await seedDocuments(stack, ids);
    // The steady state of the cadence targets: each user's last reconciliation
    // spread evenly over the past week, their last time-series read over the
    // past day (compressed), so users fall due through the day as they would.
    const env = compressedEnv();
    await stack.pool.query(
      `update oura.users set reconciled_at = now() - random() * $1::float8 * interval '1 second', reconcile_runs = floor(random() * 4)::int,
         series_refreshed_at = now() - random() * $2::float8 * interval '1 second'
       where id = any($3)`,
      [Number(env.RECONCILE_INTERVAL_S), Number(env.TIMESERIES_INTERVAL_S), ids],
    );
    log(`${ids.length} users connected, ${seeded} documents of their ${MODEL.historyDays} days in Postgres (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    const bytes0 = await tableBytes(stack);

    // The day starts: Oura's limit on, the log empty, the workers start.
    await stack.simJson('PATCH', '/_sim/config', { appLimit: { limit: lim.limit, windowS: lim.windowS } });
    await stack.simJson('DELETE', '/_sim/requests');
    await stack.simJson('DELETE', '/_sim/deliveries');
    const t0 = Date.now();
    const metricsUrls = [`${stack.apiUrl}/metrics`];
    for (let i = 0; i < workers; i++) {
      const port = await freePort();
      stack.spawnProcess('worker', { METRICS_PORT: String(port) });
      metricsUrls.push(`http://127.0.0.1:${port}/metrics`);
    }
    const rss = sampleRss(stack.children, 250);
    const cpuOf = (role: string) => {
      const v = stack.children.filter((c) => c.role === role).map((c) => processCpuS(c.child.pid));
      return v.some((x) => x === null) ? null : (v as number[]).reduce((a, b) => a + b, 0);
    };
    const cpu0 = { machine: machineCpu(), worker: cpuOf('worker'), api: cpuOf('api'), bench: process.cpuUsage() };
    const loopDelay = monitorEventLoopDelay({ resolution: 20 });
    loopDelay.enable();
    const samples: Sample[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const tick = Date.now();
        const [m, q, bf] = await Promise.all([
          scrape(metricsUrls),
          stack.pool.query<{ queued: string; oldest: Date | null }>(
            `select count(*) as queued, min(received_at) as oldest from oura.webhook_events where status = 'queued'`,
          ),
          stack.deps.backfillQueue.getJobCounts('waiting', 'delayed', 'prioritized', 'active'),
        ]);
        samples.push({
          wallMs: tick - t0,
          ...m,
          queued: Number(q.rows[0]!.queued),
          oldestMs: q.rows[0]!.oldest ? tick - q.rows[0]!.oldest.getTime() : null,
          backfillJobs: sum(bf),
        });
        await new Promise((r) => setTimeout(r, Math.max(50, 1000 - (Date.now() - tick))));
      }
    })();
    await eventually(`${workers} worker processes`, async () => (await stack.deps.queue.getWorkersCount()) >= workers, { timeoutMs: 60_000, intervalMs: 200 });
    log(`workers up after ${((Date.now() - t0) / 1000).toFixed(1)} s; playing ${trace.actions.length} actions (${trace.events} webhook events)`);

    const dayEnd = t0 + daySeconds * 1000;
    const progress = setInterval(() => {
      const s = samples[samples.length - 1];
      if (s) log(`  ${simH(s.wallMs).toFixed(1)} h: ${sum(s.ok)} requests, ${s.queued} live events waiting, ${s.backfillJobs} backfill jobs`);
    }, 30_000);
    const played = await playDay(stack, trace, ids, t0, () => Date.now() > dayEnd + 5000);
    await new Promise((r) => setTimeout(r, Math.max(0, dayEnd - Date.now())));
    const atDayEnd = await scrape(metricsUrls);
    const tEnd = Date.now();
    loopDelay.disable();
    const cpu1 = { machine: machineCpu(), worker: cpuOf('worker'), api: cpuOf('api'), bench: process.cpuUsage(cpu0.bench) };
    const daySpanS = (tEnd - t0) / 1000;
    const cores = (a: number | null, b: number | null) => (a === null || b === null ? null : (b - a) / daySpanS);
    const cpu = {
      machineBusy: cpu0.machine && cpu1.machine ? (cpu1.machine.busy - cpu0.machine.busy) / Math.max(1, cpu1.machine.total - cpu0.machine.total) : null,
      workerCores: cores(cpu0.worker, cpu1.worker),
      apiCores: cores(cpu0.api, cpu1.api),
      benchCores: (cpu1.bench.user + cpu1.bench.system) / 1e6 / daySpanS,
      benchLoopDelayP99Ms: loopDelay.percentile(99) / 1e6,
      benchLoopDelayMaxMs: loopDelay.max / 1e6,
    };
    log(`day over (${played.actions} actions, ${played.errors.length} failed, ${played.skipped} skipped, driver up to ${played.maxLagMs} ms late); draining`);

    // After the day: until the live backlog is empty and every new connection's history has landed.
    const newIds = played.connections.map((c) => c.userId);
    const drainDeadline = Date.now() + drainMs;
    let leftAfterDrain: string | null = null;
    for (;;) {
      const { rows } = await stack.pool.query<{ left: string }>(
        `select (select count(*) from oura.webhook_events where status in ('queued', 'parked'))
              + (select count(*) from oura.webhook_inbox)
              + (select count(*) from oura.backfill_progress where user_id = any($1) and status <> 'done') as left`,
        [newIds],
      );
      const { rows: loading } = await stack.pool.query<{ n: string }>(`select count(distinct user_id) as n from oura.backfill_progress where user_id = any($1)`, [newIds]);
      if (Number(rows[0]!.left) === 0 && Number(loading[0]!.n) === newIds.length) break;
      if (Date.now() > drainDeadline) {
        const { rows: left } = await stack.pool.query<{ what: string; n: string }>(
          `select status || coalesce(' (' || outcome || ')', '') || case when recheck_at is not null then ', re-check due' else '' end as what, count(*) as n
             from oura.webhook_events where status in ('queued', 'parked') group by 1
           union all select 'in the inbox', count(*) from oura.webhook_inbox having count(*) > 0
           union all select 'backfill data types not done', count(*) from oura.backfill_progress where user_id = any($1) and status <> 'done' having count(*) > 0`,
          [newIds],
        );
        leftAfterDrain = left.map((r) => `${r.n} ${r.what}`).join(', ') || 'new connections not yet loading';
        log(`not drained after ${drainMs / 1000} s: ${leftAfterDrain}`);
        break;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    clearInterval(progress);
    sampling = false;
    await sampler;
    // The day's events and connections, served by the end of the drain.
    const atDrained = await scrape(metricsUrls);
    const tDrained = Date.now();
    const rssByRole = Object.fromEntries(rss.stop());
    const bytes1 = await tableBytes(stack);

    // ---- requests
    const byPurpose = atDayEnd.ok;
    const total = sum(byPurpose);
    const simLog: SimRequest[] = stack.sim.state.requests.filter((r) => r.t >= t0);
    const inDay = simLog.filter((r) => r.t <= tEnd);
    const simAccepted = inDay.filter((r) => r.status !== 429).length;
    const refused429 = simLog.filter((r) => r.status === 429).length;
    // The simulator's limit counts its data routes (not /oauth).
    const rolling = maxInRollingWindow(
      simLog.filter((r) => r.status !== 429 && r.path.startsWith('/v2/usercollection')).map((r) => r.t),
      lim.windowS * 1000,
    );
    const perUserDay = Object.fromEntries(Object.entries(byPurpose).map(([k, v]) => [k, v / users]));
    const lowerBoundPerUserDay = trace.changes / users + TIME_SERIES.length;

    // ---- freshness (simulated seconds), by the simulated hour the event arrived in
    const { rows: evs } = await stack.pool.query<{ r: string; p: string | null; status: string }>(
      `select extract(epoch from received_at) * 1000 as r, extract(epoch from processed_at) * 1000 as p, status from oura.webhook_events`,
    );
    const fresh = evs
      .map((e) => ({ h: Math.floor(simH(Number(e.r) - t0)), s: e.p === null ? Infinity : ((Number(e.p) - Number(e.r)) / 1000) * C }))
      .filter((e) => e.h >= 0 && e.h < 24);
    const perHour = new Array<number>(24).fill(0);
    for (const e of fresh) perHour[e.h]!++;
    const peakHour = perHour.indexOf(Math.max(...perHour));
    const peak = fresh.filter((e) => e.h === peakHour).map((e) => e.s);
    const all = fresh.map((e) => e.s);

    // ---- backlog, per 3 simulated hours
    const backlog = Array.from({ length: 8 }, (_, i) => {
      const s = samples.filter((x) => simH(x.wallMs) >= i * 3 && simH(x.wallMs) < (i + 1) * 3);
      return {
        fromH: i * 3,
        maxQueued: Math.max(0, ...s.map((x) => x.queued)),
        maxOldestMin: Math.max(0, ...s.map((x) => ((x.oldestMs ?? 0) * C) / 60_000)),
        maxBackfillJobs: Math.max(0, ...s.map((x) => x.backfillJobs)),
      };
    });

    // ---- cadence from the simulator's log (the day only, existing users only)
    const existing = new Set(ids);
    const seriesPath = new Map<string, string>(TIME_SERIES.map((t) => [`/v2/usercollection/${t}`, t]));
    const seriesReads = new Map<string, Map<string, number[]>>();
    const docPaths = new Map<string, DocumentType>(DOCUMENT_TYPES.filter((t) => documentTypes[t].dateField).map((t) => [documentTypes[t].path, t]));
    const deepReads = new Map<string, Array<{ t: number; type: DocumentType }>>();
    const reachBack = isoDay(Date.now() - 2 * DAY_MS);
    for (const r of inDay) {
      if (r.status !== 200 || !r.userId || !existing.has(r.userId)) continue;
      const q = new URLSearchParams(r.query);
      const series = seriesPath.get(r.path);
      if (series && q.has('start_datetime') && !q.has('next_token')) {
        const byUser = seriesReads.get(r.userId) ?? new Map<string, number[]>();
        byUser.set(series, [...(byUser.get(series) ?? []), r.t]);
        seriesReads.set(r.userId, byUser);
      }
      const type = docPaths.get(r.path);
      const start = q.get('start_date');
      if (type && start && start <= reachBack) deepReads.set(r.userId, [...(deepReads.get(r.userId) ?? []), { t: r.t, type }]);
    }
    let readUsers = 0;
    let seriesReadCount = 0;
    const gaps: number[] = [];
    for (const id of ids) {
      const byUser = seriesReads.get(id);
      const each = TIME_SERIES.map((t) => byUser?.get(t) ?? []);
      if (each.every((ts) => ts.length > 0)) readUsers++;
      const hr = each[0]!;
      seriesReadCount += hr.length;
      for (let i = 1; i < hr.length; i++) gaps.push(simH(hr[i]! - hr[i - 1]!));
    }
    // A pass: a user's deep reads with no gap over RECONCILE_MIN_INTERVAL_S (6 simulated hours) between them.
    const passGapWallMs = (6 * 3_600_000) / C;
    let passes = 0;
    const reconciledUsers = new Set<string>();
    for (const [id, reads] of deepReads) {
      reads.sort((a, b) => a.t - b.t);
      let types = new Set<DocumentType>();
      let prev = -Infinity;
      let counted = false;
      for (const r of reads) {
        if (r.t - prev > passGapWallMs) {
          types = new Set();
          counted = false;
        }
        prev = r.t;
        types.add(r.type);
        if (!counted && types.size >= 8) {
          passes++;
          counted = true;
          reconciledUsers.add(id);
        }
      }
    }
    const reconcileRequests = byPurpose.reconcile ?? 0;
    let reconciledAtUsers: number | null = null;
    try {
      const { rows } = await stack.pool.query<{ n: string }>(`select count(*) as n from oura.users where id = any($1) and reconciled_at >= $2`, [ids, new Date(t0)]);
      reconciledAtUsers = Number(rows[0]!.n);
    } catch {
      /* no such column in this version of the schema */
    }

    // ---- new connections' backfills
    const { rows: bfRows } = await stack.pool.query<{ user_id: string; done: string; total: string; finished: Date | null; all_done: boolean }>(
      `select user_id, sum(windows_done) as done, sum(windows_total) as total, max(finished_at) as finished, bool_and(status = 'done') as all_done
         from oura.backfill_progress where user_id = any($1) group by user_id`,
      [newIds],
    );
    const backfill = played.connections.map((c) => {
      const r = bfRows.find((x) => x.user_id === c.userId);
      return {
        connectedAtH: simH(c.atWall - t0),
        doneAfterH: r?.all_done && r.finished ? simH(r.finished.getTime() - c.atWall) : null,
        windowsDone: Number(r?.done ?? 0),
        windowsTotal: Number(r?.total ?? 0),
      };
    });

    // ---- end state: every user's documents against the simulator's
    const endState = { users: 0, equal: 0, missing: 0, extra: 0, different: 0 };
    const everyone = [...ids, ...newIds];
    const stored = new Map<string, Map<string, string>>();
    for (const type of DOCUMENT_TYPES) {
      const { rows } = await stack.pool.query<{ id: string; user_id: string; document: unknown }>(`select id, user_id, document from oura."${type}"`);
      for (const r of rows) {
        const k = `${r.user_id}\u0000${type}`;
        const m = stored.get(k) ?? new Map<string, string>();
        m.set(r.id, canonical(r.document));
        stored.set(k, m);
      }
    }
    for (const id of everyone) {
      endState.users++;
      let ok = true;
      for (const type of DOCUMENT_TYPES) {
        const mine = stored.get(`${id}\u0000${type}`) ?? new Map<string, string>();
        const theirs = stack.sim.state.listDocs(id, type);
        for (const { doc } of theirs) {
          const s = mine.get(doc.id);
          if (s === undefined) {
            endState.missing++;
            ok = false;
          } else if (s !== canonical(doc)) {
            endState.different++;
            ok = false;
          }
        }
        const theirIds = new Set(theirs.map((s) => s.doc.id));
        for (const k of mine.keys()) {
          if (!theirIds.has(k)) {
            endState.extra++;
            ok = false;
          }
        }
      }
      if (ok) endState.equal++;
    }

    // ---- the clauses at this population
    const p99 = percentile(peak, 99);
    const cadenceDays = passes > 0 ? users / passes : null;
    const series = {
      users: ids.length,
      readUsers,
      readsPerUserDay: seriesReadCount / ids.length,
      medianGapH: gaps.length ? percentile(gaps, 50) : null,
      maxGapH: gaps.length ? Math.max(...gaps) : null,
    };
    const backfillOk = backfill.every((b) => b.doneAfterH !== null && b.doneAfterH * 3600 <= BACKFILL_WITHIN_S);
    const clauses = [
      { name: 'live fresh within 15 min at the peak hour (p99)', met: p99 <= FRESH_P99_S, detail: `p99 ${fmtS(p99)} at ${peakHour}:00 UTC` },
      {
        name: 'time series read at least daily',
        met: readUsers === ids.length && (series.maxGapH === null || series.maxGapH * 3600 <= SERIES_EVERY_S),
        detail: `${readUsers}/${ids.length} users' heart rate and battery read during the day`,
      },
      {
        name: 'recent days reconciled at least weekly',
        met: cadenceDays !== null && cadenceDays <= RECONCILE_EVERY_DAYS,
        detail: `${passes} reconcile passes in the day: every ${cadenceDays === null ? '∞' : cadenceDays.toFixed(1)} days`,
      },
      {
        name: 'new connections backfilled within 24 h',
        met: backfillOk,
        detail: backfill.map((b) => (b.doneAfterH === null ? `not done (${b.windowsDone}/${b.windowsTotal})` : `${b.doneAfterH.toFixed(1)} h`)).join(', ') || 'none',
      },
      { name: 'nothing lost (end state = simulator, every user)', met: endState.equal === endState.users, detail: `${endState.equal}/${endState.users} users equal` },
    ];

    // ---- the estimate
    const perPass = passes > 0 ? reconcileRequests / passes : DOCUMENT_TYPES.length;
    // Live and backfill: what the day's events and connections cost, drain included; the rest as the goal needs.
    const need: Counts = {
      live: (atDrained.ok.live ?? 0) / users,
      token: perUserDay.token ?? 0,
      backfill: (atDrained.ok.backfill ?? 0) / users,
      subscriptions: perUserDay.subscriptions ?? 0,
      timeseries: TIME_SERIES.length,
      reconcile: perPass / RECONCILE_EVERY_DAYS,
    };
    const realPerDay = (REAL_LIMIT.limit / REAL_LIMIT.windowS) * 86_400;
    const needDay = sum(need);
    const dayUsers = realPerDay / needDay;
    const livePerChange = (atDrained.ok.live ?? 0) / Math.max(1, trace.changes);
    const peakChanges = Math.max(...trace.changesByHour);
    const peakNeed = ((peakChanges / users) * livePerChange) + (needDay - need.live!) / 24;
    const peakUsers = realPerDay / 24 / peakNeed;
    const estimateUsers = Math.min(dayUsers, peakUsers);

    let svg: string | null = null;
    if (svgPath) {
      const binH = 0.5;
      const perBinWallMs = (binH * 3_600_000) / C;
      const budgetPerBin = (lim.limit / lim.windowS) * (perBinWallMs / 1000);
      const bins: Array<Record<string, number>> = Array.from({ length: 24 / binH }, (_, i) => {
        const at = (ms: number) => samples.reduce<Sample | null>((best, s) => (s.wallMs <= ms ? s : best), null);
        const a = at(i * perBinWallMs);
        const b = at((i + 1) * perBinWallMs);
        if (!b) return {};
        const d = diff(b.ok, a?.ok ?? {});
        return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, v / budgetPerBin]));
      });
      writeFileSync(
        svgPath,
        budgetSvg({
          title: `Budget use by purpose over the simulated day: ${lim.population.toLocaleString('en')} users at 5 000 / 300 s (${users} simulated × ${lim.scale.toFixed(0)})`,
          binH,
          bins,
          backlog: samples.map((s) => ({ h: simH(s.wallMs), queued: s.queued })),
        }),
      );
      svg = svgPath;
    }

    return {
      population: lim.population,
      requestedPopulation,
      scale: lim.scale,
      limit: { limit: lim.limit, windowS: lim.windowS },
      env,
      trace: { users, events: trace.events, changes: trace.changes, newConnections: trace.newConnections, peakHour: trace.changesByHour.indexOf(peakChanges), peakHourChanges: peakChanges },
      driver: { actions: played.actions, errors: played.errors.length, skipped: played.skipped, maxLagMs: played.maxLagMs, firstErrors: played.errors.slice(0, 3) },
      requests: { byPurpose, perUserDay, total, simAccepted, lowerBoundPerUserDay, refused429, rollingMax: rolling.max },
      freshness: {
        peakHour,
        peakEvents: peak.length,
        p50S: percentile(peak, 50),
        p99S: p99,
        dayP50S: percentile(all, 50),
        dayP99S: percentile(all, 99),
        notDone: all.filter((s) => !Number.isFinite(s)).length,
        events: all.length,
      },
      backlog,
      series,
      reconcile: { passes, users: reconciledUsers.size, requestsPerPass: passes > 0 ? perPass : null, cadenceDays, reconciledAtUsers },
      backfill,
      rss: rssByRole,
      bytes: (() => {
        const g = bytesGroups(bytes0, bytes1);
        return { perUserDay: (g.documents + g.series + g.events + g.other) / users, ...g };
      })(),
      endState,
      leftAfterDrain,
      clauses,
      estimate: {
        dayUsers: Math.round(dayUsers),
        peakUsers: Math.round(peakUsers),
        users: Math.floor(estimateUsers / 1000) * 1000,
        binds: dayUsers <= peakUsers ? 'the daily budget' : 'the peak hour',
        needPerUserDay: need,
      },
      svg,
      cpu,
      samples: samples.map((x) => ({ h: Number(simH(x.wallMs).toFixed(3)), requests: x.ok, queued: x.queued, backfillJobs: x.backfillJobs })),
      wallS: (tDrained - started) / 1000,
    };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stack.close();
  }
}

// ---------------------------------------------------------------- reporting

function fmtS(s: number): string {
  if (!Number.isFinite(s)) return Number.isNaN(s) ? 'n/a' : 'never';
  if (s < 120) return `${s.toFixed(0)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const mb = (b: number) => `${(b / 2 ** 20).toFixed(1)} MB`;
const kb = (b: number) => `${(b / 1024).toFixed(1)} kB`;
const PURPOSES = ['live', 'token', 'backfill', 'timeseries', 'reconcile', 'subscriptions'];

function dayReport(r: DayResult): string {
  const lines: string[] = [];
  const met = r.clauses.every((c) => c.met);
  lines.push(`### ${r.population.toLocaleString('en')} real users: ${met ? 'every clause met' : 'MISSED ' + r.clauses.filter((c) => !c.met).map((c) => c.name).join('; ')}`);
  lines.push('');
  lines.push(
    `${users} simulated users × ${r.scale.toFixed(1)}; budget ${r.limit.limit}/${r.limit.windowS} s on the compressed clock (= 5 000 / 300 s ÷ ${r.scale.toFixed(1)}, × ${C.toFixed(0)} in time). ` +
      `Trace: ${r.trace.events} webhook events, ${r.trace.changes} distinct (user, type) changes, ${r.trace.newConnections} new connections; busiest hour ${r.trace.peakHour}:00 UTC (${r.trace.peakHourChanges} changes).`,
  );
  lines.push('');
  lines.push('| clause | | measured |');
  lines.push('| --- | --- | --- |');
  for (const c of r.clauses) lines.push(`| ${c.name} | ${c.met ? 'met' : '**MISSED**'} | ${c.detail} |`);
  lines.push('');
  lines.push('| requests per user-day | spent in the day | needed (live, backfill: the day\'s work, drain included; time series: one read of each a day; reconcile: one pass a week) |');
  lines.push('| --- | --- | --- |');
  for (const p of PURPOSES) {
    const m = r.requests.perUserDay[p] ?? 0;
    const n = r.estimate.needPerUserDay[p];
    if (m === 0 && !n) continue;
    lines.push(`| ${p} | ${f2(m)} | ${n === undefined ? '' : f2(n)} |`);
  }
  const need = sum(r.estimate.needPerUserDay);
  lines.push(`| **all** | **${f2(r.requests.total / users)}** | **${f2(need)}** |`);
  lines.push(`| lower bound: changes + ${TIME_SERIES.length} time-series reads | ${f2(r.requests.lowerBoundPerUserDay)} | |`);
  lines.push('');
  lines.push(
    `Requests counted by the service ${r.requests.total}, accepted by the simulator ${r.requests.simAccepted}; 429s ${r.requests.refused429}; ` +
      `most in any rolling ${r.limit.windowS} s ${r.requests.rollingMax} / ${r.limit.limit}.`,
  );
  lines.push('');
  lines.push('| figure | value |');
  lines.push('| --- | --- |');
  lines.push(`| live freshness p50 / p99 at the peak hour (${r.freshness.peakHour}:00 UTC, ${r.freshness.peakEvents} events) | ${fmtS(r.freshness.p50S)} / ${fmtS(r.freshness.p99S)} |`);
  lines.push(`| live freshness p50 / p99 over the day (${r.freshness.events} events, ${r.freshness.notDone} never done) | ${fmtS(r.freshness.dayP50S)} / ${fmtS(r.freshness.dayP99S)} |`);
  lines.push(
    `| time series: users read / reads per user-day / interval median, max | ${r.series.readUsers}/${r.series.users} / ${f2(r.series.readsPerUserDay)} / ${r.series.medianGapH === null ? 'n/a' : `${f1(r.series.medianGapH)} h, ${f1(r.series.maxGapH!)} h`} |`,
  );
  lines.push(
    `| reconcile: passes (users) / requests per pass / cadence reached | ${r.reconcile.passes} (${r.reconcile.users}) / ${r.reconcile.requestsPerPass === null ? 'n/a' : f1(r.reconcile.requestsPerPass)} / ${r.reconcile.cadenceDays === null ? 'none' : `every ${f1(r.reconcile.cadenceDays)} days`}${r.reconcile.reconciledAtUsers === null ? '' : ` (reconciled_at set for ${r.reconcile.reconciledAtUsers})`} |`,
  );
  lines.push(`| peak RSS: api / largest worker | ${mb(r.rss.api?.peak ?? NaN)} / ${mb(r.rss.worker?.peak ?? NaN)} |`);
  lines.push(
    `| Postgres bytes per user-day: all (documents, series, events, other) | ${kb(r.bytes.perUserDay)} (${kb(r.bytes.documents / users)}, ${kb(r.bytes.series / users)}, ${kb(r.bytes.events / users)}, ${kb(r.bytes.other / users)}) |`,
  );
  lines.push(`| end state: users equal / documents missing, extra, different | ${r.endState.equal}/${r.endState.users} / ${r.endState.missing}, ${r.endState.extra}, ${r.endState.different} |`);
  lines.push(`| after the day: drained within ${drainMs / 1000} s (${((drainMs / 1000) * C / 3600).toFixed(0)} simulated hours) | ${r.leftAfterDrain === null ? 'yes' : `no: ${r.leftAfterDrain} left`} |`);
  lines.push(`| driver: actions, failed, skipped, worst lateness | ${r.driver.actions}, ${r.driver.errors}, ${r.driver.skipped}, ${r.driver.maxLagMs.toFixed(0)} ms |`);
  const c = r.cpu;
  lines.push(
    `| CPU over the day: machine busy; cores of workers / api / simulator and driver; this process's event-loop delay p99, max | ${c.machineBusy === null ? 'n/a' : `${Math.round(c.machineBusy * 100)}% of ${cpus().length}`}; ${f2(c.workerCores ?? NaN)} / ${f2(c.apiCores ?? NaN)} / ${f2(c.benchCores)}; ${c.benchLoopDelayP99Ms.toFixed(0)} ms, ${c.benchLoopDelayMaxMs.toFixed(0)} ms |`,
  );
  lines.push('');
  lines.push('Backlog over the day (per 3 simulated hours: most live events waiting, oldest wait, backfill jobs pending):');
  lines.push('');
  lines.push(`| from | ${r.backlog.map((b) => `${String(b.fromH).padStart(2, '0')}:00`).join(' | ')} |`);
  lines.push(`| --- | ${r.backlog.map(() => '---').join(' | ')} |`);
  lines.push(`| events waiting | ${r.backlog.map((b) => b.maxQueued).join(' | ')} |`);
  lines.push(`| oldest wait | ${r.backlog.map((b) => `${f1(b.maxOldestMin)} min`).join(' | ')} |`);
  lines.push(`| backfill jobs | ${r.backlog.map((b) => b.maxBackfillJobs).join(' | ')} |`);
  lines.push('');
  lines.push(
    `Estimate from this day: the daily budget serves ${r.estimate.dayUsers.toLocaleString('en')} users at ${f2(need)} requests per user-day; ` +
      `the peak hour ${r.estimate.peakUsers.toLocaleString('en')}; ${r.estimate.binds} binds.`,
  );
  if (r.svg) lines.push(`Plot: ${r.svg}`);
  return lines.join('\n');
}

function machine() {
  const c = cpus();
  return `${c[0]?.model?.trim() ?? 'unknown'}, ${c.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}`;
}

function codeVersion(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------- main

const adminDatabaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const runStarted = Date.now();
const loadBefore = loadavg()[0]!;
const trace = dayTrace(users, seed);
log(
  `population model: ${trace.events} webhook events (${(trace.events / users).toFixed(1)} per user-day, ${EVENTS_PER_USER_DAY.toFixed(1)} expected), ` +
    `${trace.changes} changes, ${trace.newConnections} new connections`,
);
const runtime = builtRuntime(compileService('bench-capacity', log), {
  nodeFlags: { api: serviceNodeOptions('api'), worker: serviceNodeOptions('worker') },
  env: { NODE_ENV: 'production' },
});

const results: DayResult[] = [];
let exitCode = 0;
try {
  for (const [i, p] of populations.entries()) {
    const prev = results[results.length - 1];
    const population = p === 'auto' ? (prev ? prev.estimate.users : NaN) : Number(p);
    if (!(population > 0)) {
      log(`skipping "${p}": no estimate to run at`);
      continue;
    }
    const svgPath = argv.svg
      ? populations.length > 1
        ? argv.svg.replace(/(\.svg)?$/, `-${i + 1}.svg`)
        : argv.svg
      : argv.json
        ? argv.json.replace(/(\.json)?$/, populations.length > 1 ? `-${i + 1}.svg` : '.svg')
        : path.join(tmpdir(), `bench-capacity-${population}.svg`);
    results.push(await runDay(population, runtime, trace, svgPath));
  }
  const runS = (Date.now() - runStarted) / 1000;
  const passed = results.filter((r) => r.clauses.every((c) => c.met));
  const largest = passed.length ? Math.max(...passed.map((r) => r.population)) : null;
  const last = results[results.length - 1];
  const smallestMissed = results.filter((r) => !r.clauses.every((c) => c.met)).sort((a, b) => a.population - b.population)[0];
  const headline = [
    `## Capacity: ${largest === null ? 'no population run met every clause' : `${largest.toLocaleString('en')} users met every clause`}` +
      (smallestMissed ? `; ${smallestMissed.population.toLocaleString('en')} missed (${smallestMissed.clauses.filter((c) => !c.met).map((c) => c.name).join('; ')})` : '') +
      (last ? `; estimate from the last day: ${last.estimate.users.toLocaleString('en')} (${last.estimate.binds} binds)` : ''),
  ];
  const compressed = Object.entries(compressedEnv()).map(([k, v]) => `${k}=${v}`).join(' ');
  const out = [
    ...headline,
    '',
    `Method: one simulated day per population, ${users} simulated users standing for population ÷ ${users} each, the budget divided by that factor; ` +
      `the day compressed ${C.toFixed(0)}-fold into ${daySeconds} s, and the service's timers with it (${compressed}). Model: bench/capacity-model.ts, seed ${seed}.`,
    `Machine: ${machine()}; 1-min load ${loadBefore.toFixed(2)} before the run. Code: ${codeVersion()}. ${workers} worker processes, 1 api, compiled as the image runs them. Run time ${runS.toFixed(0)} s.`,
    '',
    ...results.map(dayReport).flatMap((d) => [d, '']),
  ];
  process.stdout.write(`\n${out.join('\n')}\n`);
  if (argv.json) {
    const args = process.argv.slice(2).filter((a, i, all) => !/^--(json|svg)(=|$)/.test(a) && !/^--(json|svg)$/.test(all[i - 1] ?? ''));
    writeFileSync(
      argv.json,
      JSON.stringify({ at: new Date().toISOString(), command: `npm run bench:capacity -- ${args.join(' ')}`.trim(), machine: machine(), code: codeVersion(), runS, compression: C, users, seed, largest, results }, null, 2),
    );
  }
} catch (err) {
  exitCode = 1;
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
}
log(`done in ${((Date.now() - runStarted) / 1000).toFixed(0)} s`);
process.exit(exitCode);
