/**
 * `npm run bench:pipeline`: the whole pipeline under a "morning sync".
 *
 * Oura (the simulator, in this process) sends signed webhooks for a trace of
 * document creates and updates; the service runs as it is deployed (one api
 * process, N worker processes, one shared Redis limiter); the simulator
 * enforces the same app-wide limit as the service is configured with.
 *
 * Two traces from one run, one after the other on the same stack: `heavy`
 * offers about twice the events per second the budget could fetch one by one,
 * `light` well under it. For each: Oura requests per event, freshness
 * (webhook received → document written and event marked done), limiter
 * utilisation while work was pending, the most requests in any rolling window
 * against the limit, and 429s — measured from the simulator's request log and
 * from Postgres, not from the service's own counters.
 *
 *   npm run bench:pipeline -- --limit 300/30 --duration 60 --workers 4 [--users N] [--record]
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { DOCUMENT_TYPES, type DocumentType } from '../src/oura/registry.js';
import { repoRoot } from '../dev/service.js';
import { canonical, maxInRollingWindow, percentile } from '../dev/stats.js';
import { morningSync, play, usersForLoad, EVENTS_PER_USER, type PlayResult, type Trace } from '../dev/trace.js';
import { machineCpu, parseLimit, processCpuS, startBenchStack, type BenchStack } from './stack.js';
import type { RequestLogEntry as SimRequest } from '../src/sim/state.js';

// ---------------------------------------------------------------- options

const { values: argv } = parseArgs({
  options: {
    limit: { type: 'string', default: process.env.BENCH_LIMIT ?? '300/30' },
    'sim-limit': { type: 'string' },
    duration: { type: 'string', default: '60' },
    'light-duration': { type: 'string' },
    workers: { type: 'string', default: '4' },
    concurrency: { type: 'string' },
    users: { type: 'string' },
    'light-users': { type: 'string' },
    load: { type: 'string', default: '2' },
    'light-load': { type: 'string', default: '0.2' },
    seed: { type: 'string', default: '1' },
    'log-level': { type: 'string', default: 'warn' },
    'drain-timeout': { type: 'string', default: '180' },
    json: { type: 'string' },
    dump: { type: 'string' },
    record: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

if (argv.help) {
  process.stdout.write(`usage: npm run bench:pipeline -- [options]
  --limit N/W           OURA_APP_RATE_LIMIT of the service (default 300/30)
  --sim-limit N/W       the simulator's app limit (default: the same as --limit)
  --duration S          heavy trace length in seconds (default 60)
  --light-duration S    light trace length (default: --duration)
  --workers N           worker processes (default 4)
  --concurrency N       WORKER_CONCURRENCY (default: the service's, 16)
  --load X              heavy offered events/s as a multiple of the budget's requests/s (default 2)
  --light-load X        same for the light trace (default 0.2)
  --users N             heavy trace users (default: calibrated from --load)
  --light-users N       light trace users (default: calibrated from --light-load)
  --seed N              trace seed (default 1)
  --log-level L         service log level (default warn)
  --drain-timeout S     longest wait for the queue to drain after a trace (default 180)
  --json FILE           also write the results as JSON
  --dump FILE           write raw events, simulator requests and queue jobs of both traces (for digging)
  --record              write the results into BENCHMARKS.md
`);
  process.exit(0);
}

function positive(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number (got "${s}")`);
  return n;
}

const limit = parseLimit(argv.limit!, 'limit');
const simLimit = argv['sim-limit'] ? parseLimit(argv['sim-limit'], 'sim-limit') : limit;
const ratePerS = limit.limit / limit.windowS;
const heavyMs = positive(argv.duration!, 'duration') * 1000;
const lightMs = argv['light-duration'] ? positive(argv['light-duration'], 'light-duration') * 1000 : heavyMs;
const workers = Math.round(positive(argv.workers!, 'workers'));
const concurrency = argv.concurrency ? Math.round(positive(argv.concurrency, 'concurrency')) : undefined;
const heavyLoad = positive(argv.load!, 'load');
const lightLoad = positive(argv['light-load']!, 'light-load');
const heavyUsers = argv.users ? Math.round(positive(argv.users, 'users')) : usersForLoad(heavyLoad, ratePerS, heavyMs);
const lightUsers = argv['light-users'] ? Math.round(positive(argv['light-users'], 'light-users')) : usersForLoad(lightLoad, ratePerS, lightMs);
const seed = Math.round(Number(argv.seed));
const drainTimeoutMs = positive(argv['drain-timeout']!, 'drain-timeout') * 1000;

/** The limiter's own ceiling: N per (W + margin), margin as in src/oura/limiter.ts (2.5% of W, 250 ms–1 s). */
const marginMs = Math.min(1000, Math.max(250, limit.windowS * 25));
const limiterCeiling = (limit.limit / (limit.windowS * 1000 + marginMs)) * 1000;

const log = (msg: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- measuring


interface TraceResult {
  name: string;
  users: number;
  objects: number;
  plannedEvents: number;
  delivered: number;
  deliveryFailures: number;
  offeredPerS: number;
  recorded: Record<string, number>;
  drained: boolean;
  busyS: number;
  requests: { data: number; dataSingle: number; dataCollection: number; otherUsersData: number; token: number; other: number; refused429: number };
  requestsPerEvent: number;
  /** Documents / events: the requests per event if every document were fetched exactly once. */
  floorPerEvent: number;
  /** Jobs that made the fetch: time queued before a worker took them, and time held (mostly waiting for a permit). */
  servedJobs: { n: number; queuedP50: number; heldP50: number; heldP99: number; heldMax: number };
  freshnessMs: { p50: number; p99: number; max: number; n: number };
  utilisation: number;
  rollingMax: number;
  rollingMaxAt: string | null;
  rowsCurrent: number;
  rowsChecked: number;
  driverMaxLagMs: number;
  driverErrors: string[];
  cpu: { machineBusy: number | null; apiCores: number | null; workerCores: number | null; benchCores: number };
}

const dumps: unknown[] = [];

async function requestLog(stack: BenchStack, since: number): Promise<SimRequest[]> {
  return (await stack.simJson('GET', `/_sim/requests?since=${since}`)) as SimRequest[];
}

function cpuSnapshot(stack: BenchStack) {
  const sum = (role: string) => {
    const v = stack.children.filter((c) => c.role === role).map((c) => processCpuS(c.child.pid));
    return v.some((x) => x === null) ? null : (v as number[]).reduce((a, b) => a + b, 0);
  };
  const self = process.cpuUsage();
  return { at: Date.now(), machine: machineCpu(), api: sum('api'), worker: sum('worker'), bench: (self.user + self.system) / 1e6 };
}

async function runTrace(stack: BenchStack, trace: Trace, userIds: string[]): Promise<TraceResult> {
  const users = new Set(userIds);
  const cpu0 = cpuSnapshot(stack);
  log(`${trace.name}: ${trace.users} users, ${trace.objects.length} documents, ${trace.events} webhook events over ${trace.durationMs / 1000} s`);
  const played: PlayResult = await play(trace, stack.sim.url, userIds);
  log(`${trace.name}: trace played in ${((played.finishedAt - played.startedAt) / 1000).toFixed(1)} s; waiting for the queue to drain`);

  // Drained: every delivery of the trace's users admitted from the inbox, and every event left 'queued'.
  const drainDeadline = Date.now() + drainTimeoutMs;
  let drained = false;
  for (;;) {
    const { rows } = await stack.pool.query<{ queued: string }>(
      `select count(*) filter (where status in ('queued', 'parked'))
                + (select count(*) from oura.webhook_inbox where user_id = any($1)) as queued
         from oura.webhook_events where user_id = any($1)`,
      [userIds],
    );
    if (Number(rows[0]!.queued) === 0) {
      drained = true;
      break;
    }
    if (Date.now() > drainDeadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const cpu1 = cpuSnapshot(stack);
  const endedAt = Date.now();
  if (!drained) log(`${trace.name}: NOT drained after ${drainTimeoutMs / 1000} s; measuring what finished`);

  const { rows: events } = await stack.pool.query<{ id: string; status: string; r: number; p: number | null }>(
    `select id, status, extract(epoch from received_at) * 1000 as r, extract(epoch from processed_at) * 1000 as p
       from oura.webhook_events where user_id = any($1)`,
    [userIds],
  );
  for (const e of events) {
    e.r = Number(e.r);
    e.p = e.p === null ? null : Number(e.p);
  }
  const recorded: Record<string, number> = {};
  for (const e of events) recorded[e.status] = (recorded[e.status] ?? 0) + 1;

  const deliveries = ((await stack.simJson('GET', '/_sim/deliveries')) as Array<{ t: number; status: number | null; event: { user_id: string } }>).filter(
    (d) => users.has(d.event.user_id),
  );
  const ok = deliveries.filter((d) => d.status === 200);
  const deliveredTimes = ok.map((d) => d.t);
  const offeredSpanS = deliveredTimes.length > 1 ? (Math.max(...deliveredTimes) - Math.min(...deliveredTimes)) / 1000 : trace.durationMs / 1000;

  // The busy period: from the first webhook received until the last event was done.
  const done = events.filter((e) => e.p !== null);
  const busyStart = Math.min(...events.map((e) => e.r));
  const busyEnd = done.length ? Math.max(...done.map((e) => e.p!)) : endedAt;
  const busyS = Math.max(0.001, (busyEnd - busyStart) / 1000);

  const reqs = await requestLog(stack, played.startedAt);
  const inTrace = reqs.filter((r) => r.t <= endedAt);
  const isData = (r: SimRequest) => r.path.startsWith('/v2/usercollection');
  const accepted = inTrace.filter((r) => r.status !== 429);
  const allData = accepted.filter(isData);
  // Requests per event counts the trace users' data requests (nothing else should run, but be exact).
  const data = allData.filter((r) => r.userId !== null && users.has(r.userId));
  const dataSingle = data.filter((r) => r.path.split('/').length > 4).length;
  const token = accepted.filter((r) => r.path.startsWith('/oauth/token')).length;
  const inBusy = accepted.filter((r) => r.t >= busyStart && r.t <= busyEnd).length;
  // Oura counts what it accepted; the window check uses every request it saw, refused or not.
  const rolling = maxInRollingWindow(
    inTrace.map((r) => r.t),
    limit.windowS * 1000,
  );

  const freshness = done.filter((e) => e.status === 'done').map((e) => e.p! - e.r);

  // Is what landed in Postgres what Oura has now?
  let rowsCurrent = 0;
  let rowsChecked = 0;
  const byType = new Map<DocumentType, string[]>();
  for (const o of played.objects) if (o.docId) byType.set(o.type, [...(byType.get(o.type) ?? []), o.docId]);
  for (const [type, ids] of byType) {
    const { rows } = await stack.pool.query<{ id: string; user_id: string; document: unknown }>(
      `select id, user_id, document from oura."${type}" where id = any($1)`,
      [ids],
    );
    const stored = new Map(rows.map((r) => [r.id, canonical(r.document)]));
    const owners = new Set(played.objects.filter((o) => o.type === type && o.docId).map((o) => o.userId));
    for (const userId of owners) {
      const docs = (await stack.simJson('GET', `/_sim/users/${userId}/documents/${type}`)) as Array<{ id: string }>;
      for (const d of docs) {
        if (!ids.includes(d.id)) continue;
        rowsChecked++;
        if (stored.get(d.id) === canonical(d)) rowsCurrent++;
      }
    }
  }

  const elapsedS = (cpu1.at - cpu0.at) / 1000;
  const cores = (a: number | null, b: number | null) => (a === null || b === null ? null : (b - a) / elapsedS);
  const machineBusy =
    cpu0.machine && cpu1.machine ? (cpu1.machine.busy - cpu0.machine.busy) / Math.max(1, cpu1.machine.total - cpu0.machine.total) : null;

  const eventIds = new Set(events.map((e) => Number(e.id)));
  const jobs = (await stack.queue.getJobs(['completed', 'failed', 'delayed', 'waiting', 'prioritized', 'active'], 0, -1)).filter(
    (j) => j && eventIds.has((j.data as { eventId: number }).eventId),
  );
  const served = jobs.filter((j) => j.returnvalue === 'served' && j.processedOn && j.finishedOn);
  const held = served.map((j) => j.finishedOn! - j.processedOn!);

  if (argv.dump) {
    const { rows: raw } = await stack.pool.query(
      `select id, user_id, data_type, object_id, event_type, status, outcome,
              extract(epoch from received_at) * 1000 as r, extract(epoch from processed_at) * 1000 as p
         from oura.webhook_events where user_id = any($1) order by id`,
      [userIds],
    );
    const jobDump = jobs.map((j) => ({
      eventId: (j.data as { eventId: number }).eventId,
      added: j.timestamp,
      processedOn: j.processedOn,
      finishedOn: j.finishedOn,
      returnvalue: j.returnvalue,
      attemptsMade: j.attemptsMade,
    }));
    dumps.push({ trace: trace.name, startedAt: played.startedAt, events: raw, requests: inTrace, jobs: jobDump });
  }

  return {
    name: trace.name,
    users: trace.users,
    objects: trace.objects.length,
    plannedEvents: trace.events,
    delivered: ok.length,
    deliveryFailures: deliveries.length - ok.length,
    offeredPerS: ok.length / Math.max(0.001, offeredSpanS),
    recorded,
    drained,
    busyS,
    requests: {
      data: data.length,
      dataSingle,
      dataCollection: data.length - dataSingle,
      otherUsersData: allData.length - data.length,
      token,
      other: accepted.length - allData.length - token,
      refused429: inTrace.filter((r) => r.status === 429).length,
    },
    requestsPerEvent: data.length / Math.max(1, ok.length),
    floorPerEvent: played.objects.length / Math.max(1, ok.length),
    servedJobs: {
      n: served.length,
      queuedP50: percentile(
        served.map((j) => j.processedOn! - j.timestamp),
        50,
      ),
      heldP50: percentile(held, 50),
      heldP99: percentile(held, 99),
      heldMax: Math.max(...held),
    },
    freshnessMs: { p50: percentile(freshness, 50), p99: percentile(freshness, 99), max: Math.max(...freshness), n: freshness.length },
    utilisation: inBusy / (ratePerS * busyS),
    rollingMax: rolling.max,
    rollingMaxAt: rolling.at === null ? null : `${((rolling.at - played.startedAt) / 1000).toFixed(1)} s`,
    rowsCurrent,
    rowsChecked,
    driverMaxLagMs: played.maxLagMs,
    driverErrors: played.errors.slice(0, 5),
    cpu: { machineBusy, apiCores: cores(cpu0.api, cpu1.api), workerCores: cores(cpu0.worker, cpu1.worker), benchCores: (cpu1.bench - cpu0.bench) / elapsedS },
  };
}

// ---------------------------------------------------------------- reporting

function machine() {
  const c = cpus();
  let model = c[0]?.model?.trim() ?? 'unknown';
  try {
    model = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model;
  } catch {
    /* not Linux */
  }
  return { cpu: model, cores: c.length, ramGiB: Math.round(totalmem() / 2 ** 30), node: process.version, os: `${process.platform} ${process.arch}` };
}

/** The code measured: HEAD, and whether the working tree differed from it. */
function codeVersion(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'migrations', 'package.json') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown';
  }
}

const s = (ms: number) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const f4 = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : 'n/a');

/** Cores used by the worker processes, the api, this process (simulator + driver) and everything else (Postgres, Redis, other jobs). */
function cpuCell(r: TraceResult): string {
  const { machineBusy, workerCores, apiCores, benchCores } = r.cpu;
  const cores = cpus().length;
  const rest = machineBusy === null || workerCores === null || apiCores === null ? NaN : machineBusy * cores - workerCores - apiCores - benchCores;
  const machine = machineBusy === null ? '' : ` (${Math.round(machineBusy * 100)}% of ${cores} busy)`;
  return `${f2(workerCores ?? NaN)}/${f2(apiCores ?? NaN)}/${f2(benchCores)}/${f2(rest)}${machine}`;
}

function table(results: TraceResult[]): string {
  const rows: Array<[string, (r: TraceResult) => string]> = [
    ['users / documents', (r) => `${r.users} / ${r.objects}`],
    ['webhook events delivered', (r) => `${r.delivered}${r.deliveryFailures ? ` (+${r.deliveryFailures} refused)` : ''}`],
    ['offered events/s (× budget)', (r) => `${r.offeredPerS.toFixed(1)} (${(r.offeredPerS / ratePerS).toFixed(2)}×)`],
    ['Oura data requests (single+coll.)', (r) => `${r.requests.data} (${r.requests.dataSingle}+${r.requests.dataCollection})`],
    ['other requests (token, other data, misc)', (r) => `${r.requests.token}, ${r.requests.otherUsersData}, ${r.requests.other}`],
    ['Oura requests per event (1/document)', (r) => `${f3(r.requestsPerEvent)} (${f3(r.floorPerEvent)})`],
    ['freshness p50', (r) => s(r.freshnessMs.p50)],
    ['freshness p99 (max)', (r) => `${s(r.freshnessMs.p99)} (${s(r.freshnessMs.max)})`],
    ['busy period (1st webhook→drained)', (r) => `${r.busyS.toFixed(1)} s${r.drained ? '' : ' NOT DRAINED'}`],
    ['limiter utilisation (of N/W)', (r) => f4(r.utilisation)],
    ['fetch job: queued p50, held p50/p99', (r) => `${s(r.servedJobs.queuedP50)}, ${s(r.servedJobs.heldP50)} / ${s(r.servedJobs.heldP99)}`],
    [`max requests in rolling ${limit.windowS} s`, (r) => `${r.rollingMax} / ${limit.limit}`],
    ['429s', (r) => String(r.requests.refused429)],
    ['rows equal to Oura after drain', (r) => `${r.rowsCurrent} / ${r.rowsChecked}`],
    ['CPU cores: workers/api/sim/rest', (r) => cpuCell(r)],
    ['trace driver, worst lateness', (r) => s(r.driverMaxLagMs)],
  ];
  const w0 = Math.max(...rows.map(([k]) => k.length));
  const cells = rows.map(([, fn]) => results.map(fn));
  const widths = results.map((_, i) => Math.max(results[i]!.name.length, ...cells.map((c) => c[i]!.length)));
  const line = (k: string, vs: string[]) => `| ${k.padEnd(w0)} | ${vs.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  return [
    line('', results.map((r) => r.name)),
    `|${'-'.repeat(w0 + 2)}|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(([k], i) => line(k, cells[i]!)),
  ].join('\n');
}

function targets(heavy: TraceResult, light: TraceResult, all: { rollingMax: number; refused429: number }): string[] {
  const mark = (ok: boolean) => (ok ? 'met   ' : 'MISSED');
  const sameLimit = simLimit.limit === limit.limit && simLimit.windowS === limit.windowS;
  return [
    `${mark(heavy.utilisation >= 0.95)} utilisation ≥ 0.95 on heavy: ${f4(heavy.utilisation)} (the limiter's own ceiling is ${f4(limiterCeiling / ratePerS)}: N per W + ${marginMs} ms)`,
    `${mark(all.rollingMax <= limit.limit)} no rolling ${limit.windowS} s window above ${limit.limit}: max ${all.rollingMax} over the whole run`,
    `${mark(!sameLimit || all.refused429 === 0)} no 429 with our limit = the simulator's${sameLimit ? '' : ' (not applicable: limits differ)'}: ${all.refused429}`,
    `${mark(heavy.requestsPerEvent <= 0.5)} Oura requests per event ≤ 0.5 on heavy: ${f3(heavy.requestsPerEvent)}`,
    `${mark(light.freshnessMs.p99 <= 5000)} freshness p99 ≤ 5 s on light: ${s(light.freshnessMs.p99)}`,
  ];
}

function record(md: string): void {
  const file = path.join(repoRoot, 'BENCHMARKS.md');
  const begin = '<!-- bench:pipeline:begin (written by npm run bench:pipeline -- --record) -->';
  const end = '<!-- bench:pipeline:end -->';
  const block = `${begin}\n${md}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\n## Pipeline (`npm run bench:pipeline`)\n\n';
  const i = text.indexOf('<!-- bench:pipeline:begin');
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + block + text.slice(j + end.length) : `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
  log(`results written to ${file}`);
}

// ---------------------------------------------------------------- main

const adminDatabaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const heavy = morningSync('heavy', heavyUsers, heavyMs, seed);
const light = morningSync('light', lightUsers, lightMs, seed + 1);
const runStarted = Date.now();
const loadBefore = loadavg()[0]!;
log(
  `budget ${limit.limit}/${limit.windowS} s (${ratePerS.toFixed(2)} req/s), simulator ${simLimit.limit}/${simLimit.windowS} s, ${workers} worker processes; ` +
    `${EVENTS_PER_USER.toFixed(1)} events per user expected`,
);

const stack = await startBenchStack({ limit, workers, workerConcurrency: concurrency, logLevel: argv['log-level']!, adminDatabaseUrl, redisUrl });
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: cleaning up`);
    void stack.close().finally(() => process.exit(130));
  });
}

let exitCode = 0;
try {
  const ids = await stack.connectUsers(heavy.users + light.users);
  await stack.closeSetup();
  await stack.ready();
  await stack.subscribeAll(DOCUMENT_TYPES);
  // The budget starts now, with an empty window on both sides.
  await stack.simJson('PATCH', '/_sim/config', { appLimit: simLimit });
  await stack.simJson('DELETE', '/_sim/deliveries');
  log(`stack ready in ${((Date.now() - runStarted) / 1000).toFixed(1)} s: ${ids.length} users connected, all types subscribed`);
  const measuredFrom = Date.now();

  const heavyResult = await runTrace(stack, heavy, ids.slice(0, heavy.users));
  await new Promise((r) => setTimeout(r, 2000));
  const lightResult = await runTrace(stack, light, ids.slice(heavy.users));

  const all = await requestLog(stack, measuredFrom);
  const overall = {
    rollingMax: maxInRollingWindow(
      all.map((r) => r.t),
      limit.windowS * 1000,
    ).max,
    refused429: all.filter((r) => r.status === 429).length,
  };
  const m = machine();
  const results = [heavyResult, lightResult];
  const header = [
    `Budget: OURA_APP_RATE_LIMIT=${limit.limit}/${limit.windowS} (${ratePerS.toFixed(2)} req/s), simulator app limit ${simLimit.limit}/${simLimit.windowS}; ` +
      `${workers} worker processes × WORKER_CONCURRENCY ${concurrency ?? 16}, 1 api process; backfill and reconciliation off; traces run one after the other (heavy, then light).`,
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, Node ${m.node}, ${m.os}; Postgres and Redis on the same machine (1-min load average ${loadBefore.toFixed(2)} before the run). Code: ${codeVersion()}.`,
  ];
  const out = [
    ...header,
    '',
    table(results),
    '',
    'Targets:',
    ...targets(heavyResult, lightResult, overall).map((t) => `  ${t}`),
  ];
  process.stdout.write(`\n${out.join('\n')}\n\n`);
  for (const r of results) {
    if (r.driverErrors.length) log(`${r.name}: ${r.driverErrors.length} driver errors, e.g. ${r.driverErrors[0]}`);
    if (r.driverMaxLagMs > 500) log(`${r.name}: the trace driver ran up to ${r.driverMaxLagMs} ms late`);
  }
  const stamp = new Date().toISOString().slice(0, 16).replace('T', ' ');
  // The command as recorded: without --record and the paths of --json/--dump.
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--record' && !/^--(json|dump)(=|$)/.test(a) && !/^--(json|dump)$/.test(all[i - 1] ?? ''));
  const cmd = `npm run bench:pipeline -- ${args.join(' ')}`.trim();
  if (argv.json) writeFileSync(argv.json, JSON.stringify({ at: stamp, command: cmd, machine: m, limit, simLimit, workers, results, overall }, null, 2));
  if (argv.dump) writeFileSync(argv.dump, JSON.stringify(dumps));
  if (argv.record) {
    record(
      [
        `Run ${stamp} UTC, \`${cmd}\`, seed ${seed}, run time ${((Date.now() - runStarted) / 1000).toFixed(0)} s.`,
        '',
        ...header.map((h) => `${h}  `),
        '',
        table(results),
        '',
        ...targets(heavyResult, lightResult, overall).map((t) => `- ${t.replace(/^(met|MISSED)\s*/, (x) => `**${x.trim()}** `)}`),
      ].join('\n'),
    );
  }
} catch (err) {
  exitCode = 1;
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
} finally {
  await stack.close();
  log(`done in ${((Date.now() - runStarted) / 1000).toFixed(0)} s`);
}
process.exit(exitCode);
