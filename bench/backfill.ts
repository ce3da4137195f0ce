/**
 * `npm run bench:backfill`: how fast users' history lands, what it costs in
 * Oura requests, and whether live webhooks stay fresh meanwhile.
 *
 * The stack of bench/stack.ts (the simulator in this process; one api and N
 * worker processes as deployed, on a fresh database and Redis prefix). The
 * simulator gives every new user `--history` days of documents and time
 * series. `--users` users connect (before the clock starts, on a setup api
 * that starts no work), then the benchmark asks the api for each user's
 * backfill of `--days` days (`POST /admin/users/:id/backfill`, as an operator
 * or the connect flow would) and waits until every window of every user is
 * done. Meanwhile it creates documents for `--live-users` other users at
 * `--live-rate` per second, each announced by a signed webhook, and measures
 * their freshness: webhook work runs ahead of backfill on the same budget.
 *
 * The budget is scaled down (`--limit`, default 300/30) and the simulator
 * enforces the same limit, so any request over it is a 429. Measured from
 * the simulator's request log and Postgres, never from the service's counters.
 *
 *   npm run bench:backfill -- [--users 10] [--days 90] [--history 120] [--limit 300/30] [--workers 2] [--live-users 5] [--live-rate 0.5] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { DOCUMENT_TYPES, TIME_SERIES, documentTypes } from '../src/oura/registry.js';
import { isoDay } from '../src/dates.js';
import { backfillRange } from '../src/queues/index.js';
import { serviceNodeOptions } from '../dev/deployment.js';
import { maxInRollingWindow, percentile } from '../dev/stats.js';
import { machineCpu, parseLimit, processCpuS, sampleRss, startBenchStack, type BenchStack } from './stack.js';
import type { RequestLogEntry as SimRequest } from '../src/sim/state.js';

const { values: argv } = parseArgs({
  options: {
    users: { type: 'string', default: '10' },
    days: { type: 'string', default: '90' },
    history: { type: 'string', default: '120' },
    limit: { type: 'string', default: '300/30' },
    workers: { type: 'string', default: '2' },
    'live-users': { type: 'string', default: '5' },
    'live-rate': { type: 'string', default: '0.5' },
    tsx: { type: 'boolean', default: false },
    'worker-node-flags': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (argv.help) {
  process.stdout.write(`usage: npm run bench:backfill -- [options]
  --users N        users whose history is loaded (default 10)
  --days N         days each backfill covers (default 90)
  --history N      days of history the simulator gives each user (default 120)
  --limit N/W      OURA_APP_RATE_LIMIT, and the simulator's own limit (default 300/30)
  --workers N      worker processes (default 2)
  --live-users N   other users whose new documents arrive by webhook during the backfill (default 5; 0: none)
  --live-rate R    such documents per second (default 0.5)
  --tsx            run the api and workers through tsx (node --import tsx src/main.ts) instead of
                   compiled by tsc, as the Docker image runs them (NODE_ENV=production, NODE_OPTIONS
                   from docker-compose.yml)
  --worker-node-flags='…'  node flags for the compiled workers after their NODE_OPTIONS
                   (e.g. --max-old-space-size=128, to try a heap cap)
  --json FILE      also write the results as JSON
`);
  process.exit(0);
}
function positiveInt(s: string, name: string, min = 1): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: expected an integer ≥ ${min} (got "${s}")`);
  return n;
}
const userCount = positiveInt(argv.users!, 'users');
const days = positiveInt(argv.days!, 'days');
const historyDays = positiveInt(argv.history!, 'history');
const workers = positiveInt(argv.workers!, 'workers');
const liveUsers = positiveInt(argv['live-users']!, 'live-users', 0);
const liveRate = Number(argv['live-rate']);
if (!(liveRate > 0)) throw new Error(`--live-rate: expected documents per second > 0 (got "${argv['live-rate']}")`);
const limit = parseLimit(argv.limit!, 'limit');
if (argv.tsx && argv['worker-node-flags']) throw new Error('--worker-node-flags applies to the compiled workers, not --tsx');
const workerNodeFlags = (argv['worker-node-flags'] ?? '').split(/\s+/).filter(Boolean);

const log = (msg: string) => process.stderr.write(`[bench:backfill ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);


async function count(stack: BenchStack, sql: string, params: unknown[]): Promise<number> {
  const { rows } = await stack.pool.query<{ n: string }>(sql, params);
  return Number(rows[0]!.n);
}

async function run() {
  const stack = await startBenchStack({
    limit,
    workers,
    logLevel: 'warn',
    adminDatabaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    env: { BACKFILL_DAYS: String(days) },
    built: argv.tsx ? undefined : { log, nodeFlags: { worker: workerNodeFlags } },
  });
  try {
    await stack.ready();
    await stack.subscribeAll(DOCUMENT_TYPES);
    await stack.simJson('PATCH', '/_sim/config', { defaultHistoryDays: historyDays });
    const backfillUsers = await stack.connectUsers(userCount);
    await stack.simJson('PATCH', '/_sim/config', { defaultHistoryDays: 0 });
    const live = await stack.connectUsers(liveUsers);
    await stack.closeSetup();
    await stack.simJson('PATCH', '/_sim/config', { appLimit: { limit: limit.limit, windowS: limit.windowS } });
    await stack.simJson('DELETE', '/_sim/requests');
    log(`${userCount} users with ${historyDays} days of history, ${liveUsers} live users; budget ${limit.limit}/${limit.windowS} s; ${workers} worker processes`);

    const cpu0 = cpuSnapshot(stack);
    const rss = sampleRss(stack.children);
    const t0 = Date.now();
    for (const id of backfillUsers) {
      const res = await fetch(`${stack.apiUrl}/admin/users/${encodeURIComponent(id)}/backfill`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.env.ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ days }),
      });
      if (res.status !== 202) throw new Error(`backfill of ${id} → ${res.status}: ${await res.text()}`);
    }

    // Live documents, announced by webhooks, while the backfill runs.
    let liveSent = 0;
    let stopLive = false;
    const liveLoop = (async () => {
      if (liveUsers === 0) return;
      const every = 1000 / liveRate;
      for (let next = Date.now(); !stopLive; next += every) {
        await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
        if (stopLive) break;
        const user = live[liveSent % live.length]!;
        await stack.simJson('POST', `/_sim/users/${user}/documents/workout`, { notify: true });
        liveSent++;
      }
    })();

    const expected = userCount * (DOCUMENT_TYPES.length + TIME_SERIES.length);
    let lastLog = 0;
    for (;;) {
      const { rows } = await stack.pool.query<{ done: string; total: string; wdone: string; wtotal: string }>(
        `select count(*) filter (where status = 'done') as done, count(*) as total,
                coalesce(sum(windows_done), 0) as wdone, coalesce(sum(windows_total), 0) as wtotal
         from oura.backfill_progress where user_id = any($1)`,
        [backfillUsers],
      );
      const r = rows[0]!;
      if (Number(r.done) === expected) break;
      if (Date.now() - lastLog > 10_000) {
        lastLog = Date.now();
        log(`${r.done}/${expected} (user, type) backfills done, windows ${r.wdone}/${r.wtotal}, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      }
      if (Date.now() - t0 > 30 * 60_000) throw new Error('backfill did not finish within 30 minutes');
      await new Promise((res) => setTimeout(res, 500));
    }
    const t1 = Date.now();
    const cpu1 = cpuSnapshot(stack);
    const memory = rss.stop();
    stopLive = true;
    await liveLoop;
    // Let the last live events land.
    const liveEvents = async () =>
      (
        await stack.pool.query<{ status: string; received_at: Date; processed_at: Date | null }>(
          `select status, received_at, processed_at from oura.webhook_events where user_id = any($1)`,
          [live],
        )
      ).rows;
    const inInbox = async () =>
      Number((await stack.pool.query<{ n: string }>('select count(*) as n from oura.webhook_inbox where user_id = any($1)', [live])).rows[0]!.n);
    for (let i = 0; i < 60 && ((await inInbox()) > 0 || (await liveEvents()).some((e) => e.status === 'queued')); i++) {
      await new Promise((r) => setTimeout(r, 500));
    }
    const events = await liveEvents();
    const freshness = events.filter((e) => e.processed_at).map((e) => (e.processed_at!.getTime() - e.received_at.getTime()) / 1000);

    const requests = (await stack.simJson('GET', '/_sim/requests')) as SimRequest[];
    const during = requests.filter((q) => q.t >= t0 && q.t <= t1);
    const data = (q: SimRequest) => q.path.startsWith('/v2/usercollection/');
    const ofBackfill = new Set(backfillUsers);
    const backfillRequests = during.filter((q) => data(q) && q.userId && ofBackfill.has(q.userId));
    const liveRequests = requests.filter((q) => data(q) && q.userId && !ofBackfill.has(q.userId));
    const rolling = maxInRollingWindow(
      requests.filter((q) => q.path.startsWith('/v2/')).map((q) => q.t),
      limit.windowS * 1000,
    );

    const documents = await count(
      stack,
      DOCUMENT_TYPES.map((t) => `select count(*) as n from oura.${t} where user_id = any($1)`).join(' union all ').replace(/^/, 'select sum(n) as n from (') + ') c',
      [backfillUsers],
    );
    const seriesRows = await count(
      stack,
      TIME_SERIES.map((t) => `select count(*) as n from oura.${t} where user_id = any($1)`).join(' union all ').replace(/^/, 'select sum(n) as n from (') + ') c',
      [backfillUsers],
    );
    // What Oura holds in the backfilled range, to check that everything landed.
    const { start, end } = backfillRange(days, t0);
    let simDocuments = 0;
    for (const id of backfillUsers) {
      for (const type of DOCUMENT_TYPES) {
        const all = (await stack.simJson('GET', `/_sim/users/${id}/documents/${type}`)) as Array<Record<string, unknown>>;
        const field = documentTypes[type].dateField;
        simDocuments += field
          ? all.filter((d) => typeof d[field] === 'string' && (d[field] as string) >= isoDay(start) && (d[field] as string) < isoDay(end)).length
          : all.length;
      }
    }

    const seconds = (t1 - t0) / 1000;
    return {
      seconds,
      expected,
      backfillRequests: backfillRequests.length,
      backfillByKind: {
        documents: backfillRequests.filter((q) => !TIME_SERIES.some((s) => q.path.endsWith(`/${s}`))).length,
        series: backfillRequests.filter((q) => TIME_SERIES.some((s) => q.path.endsWith(`/${s}`))).length,
      },
      liveRequests: liveRequests.length,
      allDuring: during.filter((q) => q.path.startsWith('/v2/')).length,
      refused429: requests.filter((q) => q.status === 429).length,
      rollingMax: rolling.max,
      documents,
      seriesRows,
      simDocuments,
      liveSent,
      liveEvents: events.length,
      liveDone: events.filter((e) => e.status === 'done').length,
      freshness: { p50: percentile(freshness, 50), p99: percentile(freshness, 99), max: freshness.length ? Math.max(...freshness) : NaN },
      cpu: {
        workers: cpuCores(cpu0.worker, cpu1.worker, seconds),
        api: cpuCores(cpu0.api, cpu1.api, seconds),
        machineBusy: cpu0.machine && cpu1.machine ? (cpu1.machine.busy - cpu0.machine.busy) / (cpu1.machine.total - cpu0.machine.total) : null,
      },
      memory: { worker: memory.get('worker') ?? null, api: memory.get('api') ?? null },
    };
  } finally {
    await stack.close();
  }
}

function cpuSnapshot(stack: BenchStack) {
  const sum = (role: string) => {
    const v = stack.children.filter((c) => c.role === role).map((c) => processCpuS(c.child.pid));
    return v.some((x) => x === null) ? null : (v as number[]).reduce((a, b) => a + b, 0);
  };
  return { machine: machineCpu(), api: sum('api'), worker: sum('worker') };
}
function cpuCores(a: number | null, b: number | null, seconds: number): number | null {
  return a === null || b === null ? null : (b - a) / seconds;
}

type Result = Awaited<ReturnType<typeof run>>;

function report(r: Result, startedAt: Date, loadBefore: number[]): string {
  const budgetPerS = limit.limit / limit.windowS;
  const model = cpus()[0]?.model?.trim() ?? 'unknown';
  const f = (x: number | null, d = 2) => (x === null || !Number.isFinite(x) ? 'n/a' : x.toFixed(d));
  const items = r.documents + r.seriesRows;
  const mb = (bytes: number | undefined) => (bytes === undefined || !Number.isFinite(bytes) ? 'n/a' : `${(bytes / 1e6).toFixed(1)} MB`);
  const lines = [
    `Run ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, \`npm run bench:backfill -- --users ${userCount} --days ${days} --history ${historyDays} --limit ${limit.limit}/${limit.windowS} --workers ${workers} --live-users ${liveUsers} --live-rate ${liveRate}${argv.tsx ? ' --tsx' : ''}${workerNodeFlags.length ? ` --worker-node-flags='${workerNodeFlags.join(' ')}'` : ''}\`.`,
    '',
    argv.tsx
      ? 'Service: `node --import tsx src/main.ts api|worker`.'
      : `Service compiled by tsc, as the image runs it (NODE_ENV=production): api \`node ${[...serviceNodeOptions('api'), ''].join(' ')}main.js api\`, workers \`node ${[...serviceNodeOptions('worker'), ...workerNodeFlags, ''].join(' ')}main.js worker\`.`,
    '',
    `Machine: ${model}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}; Postgres, Redis, the simulator and the service on the same machine; load average ${loadBefore.map((x) => x.toFixed(2)).join(' / ')} before the run.`,
    '',
    '| | |',
    '| --- | --- |',
    `| users backfilled × (types + series) | ${userCount} × ${DOCUMENT_TYPES.length + TIME_SERIES.length} = ${r.expected} |`,
    `| all backfills done after | ${f(r.seconds, 1)} s |`,
    `| documents stored / in Oura's range | ${r.documents} / ${r.simDocuments} |`,
    `| time-series rows stored | ${r.seriesRows} |`,
    `| Oura data requests for the backfills (documents + series) | ${r.backfillRequests} (${r.backfillByKind.documents} + ${r.backfillByKind.series}); ${f(r.backfillRequests / userCount, 1)} per user |`,
    `| items per request | ${f(items / Math.max(1, r.backfillRequests), 0)} |`,
    `| all Oura requests while it ran, ÷ budget × time | ${r.allDuring} ÷ ${f(budgetPerS * r.seconds, 0)} = ${f(r.allDuring / (budgetPerS * r.seconds), 3)} |`,
    `| max requests in any rolling ${limit.windowS} s / 429s | ${r.rollingMax} / ${limit.limit}; ${r.refused429} |`,
    `| live documents created (webhook events) / events done | ${r.liveSent} (${r.liveEvents}) / ${r.liveDone}; ${r.liveRequests} requests |`,
    `| live freshness p50 / p99 (max) during the backfill | ${f(r.freshness.p50)} s / ${f(r.freshness.p99)} s (${f(r.freshness.max)} s) |`,
    `| CPU cores: workers / api (machine busy) | ${f(r.cpu.workers)} / ${f(r.cpu.api)} (${r.cpu.machineBusy === null ? 'n/a' : Math.round(r.cpu.machineBusy * 100)}% of ${cpus().length}) |`,
    `| peak RSS while it ran, largest worker / api (before it) | ${mb(r.memory.worker?.peak)} (${mb(r.memory.worker?.before)}) / ${mb(r.memory.api?.peak)} (${mb(r.memory.api?.before)}) |`,
  ];
  return lines.join('\n');
}

const startedAt = new Date();
const loadBefore = loadavg();
try {
  const r = await run();
  process.stdout.write(`\n${report(r, startedAt, loadBefore)}\n`);
  if (argv.json) writeFileSync(argv.json, JSON.stringify({ startedAt, userCount, days, historyDays, limit, workers, liveUsers, liveRate, ...r }, null, 2));
  process.exit(0);
} catch (err) {
  log(`could not run: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
