/**
 * `npm run bench:ingest`: how fast the webhook endpoint takes deliveries.
 *
 * autocannon (50 connections, one request in flight on each) posts validly
 * signed Oura webhooks — each a distinct event (its own object_id, a fresh
 * x-oura-timestamp), signed per request — to the real endpoint and, in the
 * same run, to a bare `node:http` server that only checks the same HMAC and
 * answers 200 (bench/bare-webhook-server.ts). Both run as their own process
 * on this machine, started together; the load alternates between them in
 * rounds (api, bare, api, bare, …) after an unmeasured warm-up of each, so
 * that whatever else the machine does meets both alike. Figures are pooled
 * over the rounds; each round's req/s is printed too.
 *
 * The api runs as compose runs the image: compiled by tsc, `node main.js
 * api` with NODE_ENV=production and the api's NODE_OPTIONS (with --tsx: `node --import tsx src/main.ts
 * api`, the development loader, which costs ~35 MB of RSS), on a fresh database (migrated) and a fresh Redis key prefix, with connected users so
 * every event is accepted: committed to Postgres (the inbox, oura.webhook_inbox)
 * before the 200 and queued in BullMQ right after (intake jobs naming the
 * delivery ids committed meanwhile). No worker runs, so every delivery is
 * still in the inbox afterwards and every intake job still waiting, and both
 * are checked a second after the load: each event answered 2xx must be a
 * row of the inbox and named by an intake job.
 *
 * Prints req/s, p50, p99, non-2xx and errors for both, their ratio, and the
 * api's peak RSS (sampled from /proc every 50 ms during the load, and the
 * kernel's high-water mark VmHWM over the process's life).
 *
 * The bench process itself (autocannon) needs about one core at the bare
 * server's rate: on a small machine the bare figure is the client's ceiling.
 *
 *   npm run bench:ingest -- [--duration 30] [--rounds 6] [--warmup 2] [--connections 50] [--users 100] [--log-level info] [--tsx] [--json FILE]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createTokenCipher, webhookSignature } from '../src/crypto.js';
import { createDb, createPool } from '../src/db/index.js';
import { createUsersRepo } from '../src/db/users.js';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { INTAKE_QUEUE, type IntakeJob } from '../src/queues/index.js';
import { serviceNodeOptions } from '../dev/deployment.js';
import { builtRuntime, compileService, nodeArgs, repoRoot, stopChild, tsxRuntime } from '../dev/service.js';
import { clearPrefix, createDatabase } from '../dev/services.js';
import { eventually, freePort } from '../dev/util.js';
import { machineCpu, memoryOf, processCpuS, SECRETS } from './stack.js';

// ---------------------------------------------------------------- options

const { values: argv } = parseArgs({
  options: {
    duration: { type: 'string', default: '30' },
    rounds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    users: { type: 'string', default: '100' },
    'log-level': { type: 'string', default: 'info' },
    tsx: { type: 'boolean', default: false },
    // The default now; still accepted so that recorded commands run as written.
    build: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'api-node-flags': { type: 'string' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (argv.help) {
  process.stdout.write(`usage: npm run bench:ingest -- [options]
  --duration S       seconds of measured load on each server (default 30), split into --rounds
  --rounds N         rounds, alternating api and bare, so both meet the same machine (default 6)
  --warmup S         unmeasured seconds of load on each server first (default 2; 0: none)
  --connections N    concurrent connections, one request in flight on each (default 50)
  --users N          connected users the events are spread over (default 100)
  --log-level L      the api's LOG_LEVEL (default info, the service's default); its stdout goes to /dev/null
  --tsx              run the api through tsx (\`node --import tsx src/main.ts api\`, as \`npm run start:api\` does)
                     instead of compiled by tsc (\`node main.js api\`, NODE_ENV=production), as the Docker image runs it
  --cpu-prof DIR     write a V8 CPU profile of the api process into DIR (open it in Chrome DevTools)
  --api-node-flags=F extra node flags for the api process, space-separated (e.g. --api-node-flags=--max-semi-space-size=4)
  --json FILE        also write the results as JSON
`);
  process.exit(0);
}
function positiveInt(s: string, name: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer (got "${s}")`);
  return n;
}
const durationS = positiveInt(argv.duration!, 'duration');
const connections = positiveInt(argv.connections!, 'connections');
const rounds = positiveInt(argv.rounds!, 'rounds');
const warmupS = Number(argv.warmup);
if (!Number.isFinite(warmupS) || warmupS < 0) throw new Error(`--warmup: expected seconds ≥ 0 (got "${argv.warmup}")`);
const userCount = positiveInt(argv.users!, 'users');
const logLevel = argv['log-level']!;
const built = !argv.tsx;
if (argv.tsx && argv.build) throw new Error('--tsx and --build contradict each other');

const TARGETS = { ratio: 0.5, p99Ms: 50, rssBytes: 150e6 };


const log = (msg: string) => process.stderr.write(`[bench:ingest ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

// ---------------------------------------------------------------- processes

/** CPU seconds used so far by every process named `postgres` or `redis-server` on this machine (shared with anything else using them). */
function storesCpuS(): { postgres: number; redis: number } {
  const out = { postgres: 0, redis: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (comm !== 'postgres' && comm !== 'redis-server') continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[comm === 'postgres' ? 'postgres' : 'redis'] += (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

interface Child {
  child: ChildProcess;
  stderr: () => string;
}

/** Runs `node <args>` (add `--import tsx` to run TypeScript). */
function spawnChild(role: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, args, {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    // stdout (the service's JSON logs) goes nowhere: the bench process must not pay for reading it.
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8000);
  });
  child.on('exit', (code, signal) => {
    if (code || (signal && signal !== 'SIGTERM')) log(`${role} ${child.pid} exited ${code ?? signal}: ${stderr}`);
  });
  return { child, stderr: () => stderr };
}

// ---------------------------------------------------------------- load

/** What the responses of some load were. */
interface ResponseCounts {
  responses: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statuses: Record<string, number>;
  /** The api's `status` in each 2xx body: accepted, duplicate, ignored. */
  outcomes: Record<string, number>;
}

/** One stretch of load on one server. */
interface Round extends ResponseCounts {
  elapsedS: number;
  /** object_id of every event answered 2xx. */
  answered: string[];
  /** Every response's latency, ms (autocannon's own measure: request written → response complete). */
  latencies: number[];
  rssPeak: number;
  rssBefore: number;
  /** CPU seconds over the round: the server, this process (autocannon), Postgres, Redis; machine busy/total ticks. */
  cpuS: number | null;
  benchS: number;
  postgresS: number;
  redisS: number;
  machine: { busy: number; total: number } | null;
}

/** The measured rounds of one server, pooled. */
interface LoadResult extends ResponseCounts {
  target: string;
  /** Responses ÷ seconds of load, over every measured round. */
  reqPerS: number;
  perRound: number[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  rssPeakDuringLoad: number;
  rssBefore: number;
  hwm: number;
  cpuCores: number | null;
  /** Cores used by this process: autocannon and the bookkeeping around it. */
  benchCores: number;
  /** Cores used by every postgres and redis-server process (other users of them included). */
  postgresCores: number;
  redisCores: number;
  machineBusy: number | null;
}

const runTag = randomBytes(4).toString('hex');
let sequence = 0;

/** Signed, distinct webhook deliveries against `url` for `seconds`. */
async function load(url: string, pid: number | undefined, users: string[], seconds: number): Promise<Round> {
  const answered: string[] = [];
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const outcomes: Record<string, number> = {};
  let rssPeak = 0;
  const rssBefore = memoryOf(pid)?.rss ?? NaN;
  const sampler = setInterval(() => {
    const m = memoryOf(pid);
    if (m && m.rss > rssPeak) rssPeak = m.rss;
  }, 50);
  const cpu0 = processCpuS(pid);
  const bench0 = process.cpuUsage();
  const stores0 = storesCpuS();
  const machine0 = machineCpu();
  const t0 = Date.now();

  const instance = autocannon({
    url,
    connections,
    pipelining: 1,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: '/webhooks/oura',
        // Built anew for every request: a distinct event, signed with a fresh timestamp.
        setupRequest: (req, context) => {
          const n = ++sequence;
          const objectId = `bench-${runTag}-${n}`;
          const body = JSON.stringify({
            event_type: 'create',
            data_type: DOCUMENT_TYPES[n % DOCUMENT_TYPES.length],
            object_id: objectId,
            event_time: new Date().toISOString(),
            user_id: users[n % users.length],
          });
          const timestamp = String(Math.floor(Date.now() / 1000));
          (context as { objectId?: string }).objectId = objectId;
          return {
            ...req,
            headers: {
              'content-type': 'application/json',
              'x-oura-timestamp': timestamp,
              // Upper-case hex, as Oura (and the simulator) sends it.
              'x-oura-signature': webhookSignature(SECRETS.OURA_CLIENT_SECRET, timestamp, body).toUpperCase(),
            },
            body,
          };
        },
        // One request in flight per connection, so the context names the request answered.
        onResponse: (status, body, context) => {
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status < 200 || status > 299) return;
          answered.push((context as { objectId: string }).objectId);
          const outcome = /"status":"([a-z_]+)"/.exec(body)?.[1] ?? 'unknown';
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        },
      },
    ],
  });
  // autocannon's instance is also an event emitter; its typings only show the promise.
  (instance as unknown as NodeJS.EventEmitter).on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  const result = await instance;

  clearInterval(sampler);
  const elapsedS = result.duration || (Date.now() - t0) / 1000;
  const cpu1 = processCpuS(pid);
  const bench1 = process.cpuUsage(bench0);
  const stores1 = storesCpuS();
  const machine1 = machineCpu();
  return {
    elapsedS,
    responses: result.requests.total,
    ok2xx: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statuses,
    outcomes,
    answered,
    latencies,
    rssPeak: Math.max(rssPeak, memoryOf(pid)?.rss ?? 0),
    rssBefore,
    cpuS: cpu0 !== null && cpu1 !== null ? cpu1 - cpu0 : null,
    benchS: (bench1.user + bench1.system) / 1e6,
    postgresS: Math.max(0, stores1.postgres - stores0.postgres),
    redisS: Math.max(0, stores1.redis - stores0.redis),
    machine: machine0 && machine1 && machine1.total > machine0.total ? { busy: machine1.busy - machine0.busy, total: machine1.total - machine0.total } : null,
  };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
}

function addCounts(into: Record<string, number>, from: Record<string, number>): Record<string, number> {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] ?? 0) + n;
  return into;
}

/** Pools the measured rounds of one server: sums, and percentiles over every response. */
function pooled(target: string, rs: Round[], pid: number | undefined): LoadResult {
  const sum = (f: (r: Round) => number) => rs.reduce((a, r) => a + f(r), 0);
  const seconds = sum((r) => r.elapsedS);
  const latencies = rs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  const machines = rs.map((r) => r.machine);
  const cpus = rs.map((r) => r.cpuS);
  return {
    target,
    reqPerS: sum((r) => r.responses) / seconds,
    perRound: rs.map((r) => r.responses / r.elapsedS),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    maxMs: Math.round(latencies[latencies.length - 1] ?? NaN),
    responses: sum((r) => r.responses),
    ok2xx: sum((r) => r.ok2xx),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    statuses: rs.reduce((a, r) => addCounts(a, r.statuses), {}),
    outcomes: rs.reduce((a, r) => addCounts(a, r.outcomes), {}),
    rssPeakDuringLoad: Math.max(...rs.map((r) => r.rssPeak)),
    rssBefore: rs[0]?.rssBefore ?? NaN,
    hwm: memoryOf(pid)?.hwm ?? NaN,
    cpuCores: cpus.every((c) => c !== null) ? sum((r) => r.cpuS!) / seconds : null,
    benchCores: sum((r) => r.benchS) / seconds,
    postgresCores: sum((r) => r.postgresS) / seconds,
    redisCores: sum((r) => r.redisS) / seconds,
    machineBusy: machines.every((m) => m !== null) ? sum((r) => r.machine!.busy) / sum((r) => r.machine!.total) : null,
  };
}

// ---------------------------------------------------------------- the run

function machine() {
  let model = cpus()[0]?.model?.trim() ?? 'unknown';
  try {
    model = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? model;
  } catch {
    /* not Linux */
  }
  return { cpu: model, cores: cpus().length, ramGiB: Math.round(totalmem() / 2 ** 30), node: process.version, os: `${process.platform} ${process.arch}` };
}

function codeVersion(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git('status', '--porcelain', '--', 'src', 'migrations', 'package.json') !== '';
    return `${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes in src/' : ''}`;
  } catch {
    return 'unknown';
  }
}

const adminDatabaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const loadBefore = loadavg();
const startedAt = new Date();

const cleanups: Array<() => Promise<unknown>> = [];
async function cleanup() {
  for (const c of cleanups.reverse()) await c().catch((err: Error) => log(`cleanup: ${err.message}`));
  cleanups.length = 0;
}
process.on('SIGINT', () => void cleanup().then(() => process.exit(130)));

interface Verification {
  answered: number;
  recorded: number;
  answeredRecorded: number;
  answeredWithJob: number;
  recordedNotAnswered: number;
  /** Intake jobs, and the deliveries they name. */
  jobs: number;
  queuedDeliveries: number;
}

async function run() {
  const tag = randomBytes(4).toString('hex');
  const prefix = `bench-ingest-${tag}`;

  // First, while nothing else is open: tsc blocks this process for a while.
  const runtime = built
    ? builtRuntime(compileService('bench-ingest', log), { nodeFlags: { api: serviceNodeOptions('api') }, env: { NODE_ENV: 'production' } })
    : tsxRuntime();
  let apiArgs = nodeArgs(runtime, 'main', ['api'], 'api');

  // A fresh database with every migration applied.
  const db = await createDatabase(adminDatabaseUrl, { label: 'bench_ingest' });
  cleanups.push(() => db.drop());
  const pool = createPool({ url: db.url, max: 2 });
  cleanups.push(() => pool.end());

  // Connected users (as /oauth/callback leaves them), so each event is accepted and queued.
  const users = createUsersRepo(createDb(pool));
  const cipher = createTokenCipher(SECRETS.TOKEN_ENCRYPTION_KEY);
  const userIds = Array.from({ length: userCount }, (_, i) => `bench-user-${tag}-${i}`);
  for (const id of userIds) {
    await users.upsertConnected({
      id,
      personalInfo: null,
      accessTokenEnc: cipher.encrypt(`access-${id}`),
      refreshTokenEnc: cipher.encrypt(`refresh-${id}`),
      expiresAt: new Date(Date.now() + 86_400_000),
      scopes: 'daily heartrate workout session spo2 tag',
    });
  }

  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', (err) => log(`redis: ${err.message}`));
  const queue = new Queue<IntakeJob>(INTAKE_QUEUE, { connection: redis, prefix });
  cleanups.push(async () => {
    await queue.close();
    await redis.quit();
    await clearPrefix(redisUrl, prefix);
  });

  // The api, as deployed; no worker, so the intake jobs stay in their queue to be counted.
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  if (argv['cpu-prof']) apiArgs = ['--cpu-prof', '--cpu-prof-dir', path.resolve(argv['cpu-prof']), ...apiArgs];
  if (argv['api-node-flags']) apiArgs = [...argv['api-node-flags'].split(/\s+/).filter(Boolean), ...apiArgs];
  const api = spawnChild('api', apiArgs, {
    ...SECRETS,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: prefix,
    PUBLIC_BASE_URL: apiUrl,
    // Nothing here calls Oura; should anything try, it fails at once.
    OURA_API_BASE_URL: 'http://127.0.0.1:9',
    PORT: String(apiPort),
    HOST: '127.0.0.1',
    LOG_LEVEL: logLevel,
    ...runtime.env,
  });
  cleanups.push(() => stopChild(api.child));
  await eventually('api /readyz', async () => (await fetch(`${apiUrl}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 200 });
  log(`api ${api.child.pid} ready on ${apiUrl} (database ${db.name}, prefix ${prefix}, ${userCount} users, LOG_LEVEL ${logLevel})`);

  // The bare reference, in its own process too; both wait idle while the other is loaded.
  const barePort = await freePort();
  const bareUrl = `http://127.0.0.1:${barePort}`;
  const bare = spawnChild('bare', ['--import', 'tsx', path.join(repoRoot, 'bench/bare-webhook-server.ts')], {
    PORT: String(barePort),
    OURA_CLIENT_SECRET: SECRETS.OURA_CLIENT_SECRET,
  });
  cleanups.push(() => stopChild(bare.child));
  await eventually('bare server', async () => (await fetch(`${bareUrl}/readyz`)).status === 200, { timeoutMs: 30_000, intervalMs: 100 });
  log(`bare server ${bare.child.pid} ready on ${bareUrl}`);

  // Alternate the two, so that whatever else the machine does meets both alike.
  const apiRounds: Round[] = [];
  const bareRounds: Round[] = [];
  const answered: string[] = [];
  // A loop, not push(...): a round can answer more events than a call takes arguments.
  const noteAnswered = (ids: string[]) => {
    for (const id of ids) answered.push(id);
  };
  if (warmupS > 0) {
    log(`warm-up: ${warmupS} s on each (not measured)`);
    noteAnswered((await load(apiUrl, api.child.pid, userIds, warmupS)).answered);
    await load(bareUrl, bare.child.pid, userIds, warmupS);
  }
  const roundS = durationS / rounds;
  for (let i = 1; i <= rounds; i++) {
    const a = await load(apiUrl, api.child.pid, userIds, roundS);
    const b = await load(bareUrl, bare.child.pid, userIds, roundS);
    apiRounds.push(a);
    bareRounds.push(b);
    noteAnswered(a.answered);
    log(`round ${i}/${rounds} (${roundS} s each, ${connections} connections): api ${(a.responses / a.elapsedS).toFixed(0)} req/s, bare ${(b.responses / b.elapsedS).toFixed(0)} req/s`);
  }
  const apiResult = pooled('api', apiRounds, api.child.pid);
  const bareResult = pooled('bare', bareRounds, bare.child.pid);
  await stopChild(bare.child);

  // Requests in flight when the load stopped may still be recorded; let them land.
  await new Promise((r) => setTimeout(r, 1000));
  const { rows } = await pool.query<{ id: string; object_id: string }>(
    `select id, object_id from oura.webhook_inbox where object_id like $1`,
    [`bench-${runTag}-%`],
  );
  const intakeJobs = await queue.getJobs(['wait', 'active', 'delayed', 'prioritized', 'completed', 'failed'], 0, -1);
  const queuedIds = new Set(intakeJobs.flatMap((j) => ('deliveryIds' in j.data ? j.data.deliveryIds : []).map(String)));
  const byObject = new Map(rows.map((r) => [r.object_id, r]));
  let answeredRecorded = 0;
  let answeredWithJob = 0;
  for (const objectId of answered) {
    const row = byObject.get(objectId);
    if (row) answeredRecorded++;
    if (row && queuedIds.has(row.id)) answeredWithJob++;
  }
  const answeredSet = new Set(answered);
  const verification: Verification = {
    answered: answered.length,
    recorded: rows.length,
    answeredRecorded,
    answeredWithJob,
    recordedNotAnswered: rows.filter((r) => !answeredSet.has(r.object_id)).length,
    jobs: intakeJobs.length,
    queuedDeliveries: queuedIds.size,
  };
  await stopChild(api.child);

  return { apiResult, bareResult, verification };
}

// ---------------------------------------------------------------- reporting

const mb = (b: number) => (Number.isFinite(b) ? `${(b / 1e6).toFixed(1)} MB` : 'n/a');
const ms = (x: number) => (Number.isFinite(x) ? `${x} ms` : 'n/a');
const f2 = (x: number | null) => (x !== null && Number.isFinite(x) ? x.toFixed(2) : 'n/a');

function report(apiR: LoadResult, bareR: LoadResult, v: Verification): string {
  const m = machine();
  const ratio = apiR.reqPerS / bareR.reqPerS;
  const others = (r: LoadResult) =>
    Object.entries(r.statuses)
      .filter(([s]) => !s.startsWith('2'))
      .map(([s, n]) => `${n}×${s}`)
      .join(', ');
  const row = (name: string, a: string, b: string, c = '') => `| ${name} | ${a} | ${b} | ${c} |`;
  const lines = [
    `Run ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC, \`npm run bench:ingest -- --duration ${durationS} --rounds ${rounds} --warmup ${warmupS} --connections ${connections} --users ${userCount} --log-level ${logLevel}${built ? '' : ' --tsx'}${argv['api-node-flags'] ? ` --api-node-flags='${argv['api-node-flags']}'` : ''}\`.`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, Node ${m.node}, ${m.os}; Postgres, Redis, autocannon and both servers on the same machine; load average ${loadBefore.map((x) => x.toFixed(2)).join(' / ')} (1/5/15 min) before the run. Code: ${codeVersion()}.  `,
    `api: ${built ? `\`node ${[...serviceNodeOptions('api'), ''].join(' ')}main.js api\` compiled by tsc (NODE_ENV=production and the api's NODE_OPTIONS from docker-compose.yml, as compose runs the image)` : '`node --import tsx src/main.ts api`'}, LOG_LEVEL ${logLevel} (stdout to /dev/null), no worker; ${userCount} connected users; every request a distinct, signed \`create\` event. ${rounds} rounds of ${+(durationS / rounds).toFixed(2)} s on each server, alternating (api, then bare), after ${warmupS} s of unmeasured warm-up on each.`,
    '',
    '|  | api `POST /webhooks/oura` | bare `node:http` + HMAC (tsx) | api / bare |',
    '| --- | --- | --- | --- |',
    row(`req/s (responses ÷ seconds, ${rounds} rounds pooled)`, apiR.reqPerS.toFixed(0), bareR.reqPerS.toFixed(0), ratio.toFixed(3)),
    row('req/s in each round (alternating: api, then bare)', apiR.perRound.map((x) => x.toFixed(0)).join(', '), bareR.perRound.map((x) => x.toFixed(0)).join(', '), apiR.perRound.map((x, i) => (x / bareR.perRound[i]!).toFixed(3)).join(', ')),
    row('latency p50 (every response of the rounds)', ms(apiR.p50Ms), ms(bareR.p50Ms), (apiR.p50Ms / bareR.p50Ms).toFixed(1) + '×'),
    row('latency p99 (max)', `${ms(apiR.p99Ms)} (${ms(apiR.maxMs)})`, `${ms(bareR.p99Ms)} (${ms(bareR.maxMs)})`, (apiR.p99Ms / bareR.p99Ms).toFixed(1) + '×'),
    row('responses: 2xx / non-2xx', `${apiR.ok2xx} / ${apiR.non2xx}${others(apiR) ? ` (${others(apiR)})` : ''}`, `${bareR.ok2xx} / ${bareR.non2xx}${others(bareR) ? ` (${others(bareR)})` : ''}`),
    row('errors (of which timeouts)', `${apiR.errors} (${apiR.timeouts})`, `${bareR.errors} (${bareR.timeouts})`),
    row('peak RSS during load (before load)', `${mb(apiR.rssPeakDuringLoad)} (${mb(apiR.rssBefore)})`, `${mb(bareR.rssPeakDuringLoad)} (${mb(bareR.rssBefore)})`),
    row('RSS high-water mark, process life (VmHWM)', mb(apiR.hwm), mb(bareR.hwm)),
    row('CPU cores: server / autocannon / Postgres / Redis / rest (machine busy)', cpuCell(apiR, m.cores), cpuCell(bareR, m.cores)),
    '',
    `Every event answered 2xx, checked afterwards: ${v.answeredRecorded} / ${v.answered} are rows of oura.webhook_inbox (recorded; no worker runs to admit them), ${v.answeredWithJob} / ${v.answered} are named by a job of the \`${INTAKE_QUEUE}\` queue (api outcomes: ${Object.entries(apiR.outcomes).map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}). Recorded but not answered (in flight when the load stopped): ${v.recordedNotAnswered}; rows ${v.recorded}, deliveries queued ${v.queuedDeliveries}, in ${v.jobs} intake jobs (${(v.queuedDeliveries / Math.max(1, v.jobs)).toFixed(1)} per job).`,
    '',
    verdict(ratio >= TARGETS.ratio, `throughput ≥ ${TARGETS.ratio} × bare: ${ratio.toFixed(3)}`),
    verdict(apiR.p99Ms <= TARGETS.p99Ms, `p99 ≤ ${TARGETS.p99Ms} ms: ${ms(apiR.p99Ms)}`),
    verdict(apiR.non2xx === 0 && apiR.errors === 0, `zero non-2xx (and no errors): ${apiR.non2xx} non-2xx, ${apiR.errors} errors`),
    verdict(Math.max(apiR.rssPeakDuringLoad, apiR.hwm) <= TARGETS.rssBytes, `api peak RSS ≤ 150 MB: ${mb(Math.max(apiR.rssPeakDuringLoad, apiR.hwm))}`),
    verdict(v.answeredRecorded === v.answered && v.answeredWithJob === v.answered, `every 2xx recorded and queued: ${v.answeredRecorded} and ${v.answeredWithJob} of ${v.answered}`),
  ];
  return lines.join('\n');
}
/** Cores used by the server, autocannon (this process), Postgres, Redis, and everything else (other jobs on the machine). */
function cpuCell(r: LoadResult, cores: number): string {
  const rest = r.machineBusy === null || r.cpuCores === null ? NaN : r.machineBusy * cores - r.cpuCores - r.benchCores - r.postgresCores - r.redisCores;
  return `${[r.cpuCores, r.benchCores, r.postgresCores, r.redisCores, Math.max(0, rest)].map(f2).join(' / ')} (${r.machineBusy === null ? 'n/a' : Math.round(r.machineBusy * 100)}% of ${cores})`;
}
function verdict(met: boolean, what: string): string {
  return `- **${met ? 'met' : 'MISSED'}** ${what}`;
}

try {
  const { apiResult, bareResult, verification } = await run();
  await cleanup();
  process.stdout.write(`\n${report(apiResult, bareResult, verification)}\n`);
  if (argv.json) {
    writeFileSync(argv.json, JSON.stringify({ startedAt, loadBefore, durationS, rounds, warmupS, connections, userCount, logLevel, built, api: apiResult, bare: bareResult, verification }, null, 2));
  }
  process.exit(0);
} catch (err) {
  log(`could not run: ${(err as Error).stack ?? String(err)}`);
  await cleanup();
  process.exit(1);
}
