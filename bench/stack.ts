/**
 * The benchmark's stack: a fresh database, a Redis key prefix, the simulator
 * in this process, and the service as separate processes (one api and N
 * workers, as deployed; through tsx, or compiled as the image runs them with
 * `built`). Adapted from
 * test/helpers/stack.ts, with what a benchmark needs on top: many users
 * connected quickly, process CPU readings, and a clean teardown.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { RateLimit } from '../src/config.js';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/index.js';
import { runMigrations } from '../src/db/migrate.js';
import { createDeps } from '../src/deps.js';
import { buildApp } from '../src/server/app.js';
import { startSimulator } from '../src/sim/index.js';
import { EVENTS_QUEUE } from '../src/queues/index.js';
import { composeServices, imageNodeOptions } from '../test/helpers/deployment.js';
import { clearPrefix } from '../test/helpers/env.js';
import { eventually, freePort, simJsonClient } from '../test/helpers/util.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const SECRETS = {
  OURA_CLIENT_ID: 'bench-client-id',
  OURA_CLIENT_SECRET: 'bench-client-secret-0123456789',
  OURA_WEBHOOK_VERIFICATION_TOKEN: 'bench-verification-token',
  TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 9).toString('base64'),
  ADMIN_TOKEN: 'bench-admin-token-0123456789',
};

export { eventually, freePort };

/** SIGTERM, and SIGKILL if the process has not exited after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Compiles src/ with tsc into `node_modules/.cache/<name>` (under
 * node_modules, so the compiled files resolve their packages), as the
 * Docker image does; returns the path of main.js. Blocks for a while.
 */
export function compileService(name: string, log: (msg: string) => void): string {
  const dir = path.join(repoRoot, 'node_modules/.cache', name);
  log(`compiling src/ to ${path.relative(repoRoot, dir)}`);
  rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync(path.join(repoRoot, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', dir], { cwd: repoRoot, stdio: 'pipe' });
  } catch (err) {
    // Type errors elsewhere in a working tree still emit JavaScript; only a missing entry point stops the run.
    if (!existsSync(path.join(dir, 'main.js'))) throw err;
    log('tsc reported errors; running what it emitted');
  }
  return path.join(dir, 'main.js');
}

/**
 * The node flags a service ships with: its NODE_OPTIONS in
 * docker-compose.yml, else the image's (`ENV NODE_OPTIONS=…` in the Dockerfile).
 */
export function serviceNodeOptions(service: 'api' | 'worker'): string[] {
  const fromCompose = composeServices()[service]?.environment?.NODE_OPTIONS;
  return fromCompose === undefined ? imageNodeOptions() : fromCompose.split(/\s+/).filter(Boolean);
}

/** A `--limit N/W` option. */
export function parseLimit(s: string, name: string): RateLimit {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(s);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < 1) throw new Error(`--${name}: expected N/W, e.g. 300/30 (got "${s}")`);
  return { limit: Number(m[1]), windowS: Number(m[2]) };
}

/** CPU seconds (user + system) a process has used so far; null once it is gone. */
export function processCpuS(pid: number | undefined): number | null {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ (100 on Linux)
  } catch {
    return null;
  }
}

/** Resident set size now and its high-water mark (bytes), from /proc; null once the process is gone. */
export function memoryOf(pid: number | undefined): { rss: number; hwm: number } | null {
  if (!pid) return null;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

/**
 * Samples the RSS of each process every `intervalMs` from now until `stop`,
 * which gives, per role, the largest RSS any of its processes had when
 * sampling began and the largest seen since (bytes).
 */
export function sampleRss(children: ReadonlyArray<{ role: string; child: ChildProcess }>, intervalMs = 100) {
  const before = new Map<string, number>();
  const peak = new Map<string, number>();
  const take = (into: Map<string, number>) => {
    for (const { role, child } of children) {
      const rss = memoryOf(child.pid)?.rss;
      if (rss !== undefined && rss > (into.get(role) ?? 0)) into.set(role, rss);
    }
  };
  take(before);
  const timer = setInterval(() => take(peak), intervalMs);
  return {
    stop(): Map<string, { before: number; peak: number }> {
      clearInterval(timer);
      take(peak);
      return new Map([...before].map(([role, b]) => [role, { before: b, peak: Math.max(b, peak.get(role) ?? 0) }]));
    },
  };
}

/** Machine-wide CPU counters (jiffies): busy and total, from /proc/stat. */
export function machineCpu(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

export interface BenchStackOptions {
  limit: RateLimit;
  workers: number;
  workerConcurrency?: number;
  logLevel: string;
  /** Admin connection (creates and drops the benchmark's database). */
  adminDatabaseUrl: string;
  redisUrl: string;
  /** Service settings over the defaults below (e.g. BACKFILL_DAYS). */
  env?: Record<string, string>;
  /**
   * Run the api and workers as the image does (compiled by tsc, with
   * NODE_ENV=production and each service's NODE_OPTIONS from
   * docker-compose.yml) instead of through tsx; `log` reports the compile.
   */
  built?: { log: (msg: string) => void; nodeFlags?: Partial<Record<'api' | 'worker', string[]>> };
}

export async function startBenchStack(opts: BenchStackOptions) {
  const tag = randomBytes(4).toString('hex');
  const dbName = `oura_bench_${tag}`;
  const prefix = `bench-${tag}`;
  const cleanups: Array<() => Promise<unknown>> = [];
  // First, while nothing else is open: tsc blocks this process for a while.
  const mainJs = opts.built ? compileService('bench-stack', opts.built.log) : null;
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch((err: Error) => process.stderr.write(`cleanup: ${err.message}\n`));
    cleanups.length = 0;
  };

  try {
    // Database with every migration applied.
    const admin = new pg.Client({ connectionString: opts.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`create database ${dbName}`);
    await admin.end();
    cleanups.push(async () => {
      const c = new pg.Client({ connectionString: opts.adminDatabaseUrl });
      await c.connect();
      await c.query(`drop database if exists ${dbName} with (force)`);
      await c.end();
    });
    const dbUrl = new URL(opts.adminDatabaseUrl);
    dbUrl.pathname = `/${dbName}`;
    const databaseUrl = dbUrl.toString();
    const pool = createPool({ url: databaseUrl, max: 4 });
    cleanups.push(() => pool.end());
    await runMigrations(pool);

    const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 2 });
    cleanups.push(async () => {
      await redis.quit();
      await clearPrefix(opts.redisUrl, prefix);
      await clearPrefix(opts.redisUrl, `${prefix}-setup`);
    });

    // The simulator: Oura. No limit while users connect; the budget is set before the traces.
    const sim = await startSimulator({
      clientId: SECRETS.OURA_CLIENT_ID,
      clientSecret: SECRETS.OURA_CLIENT_SECRET,
      port: 0,
      host: '127.0.0.1',
      appLimit: null,
    });
    cleanups.push(() => sim.close());

    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const env: Record<string, string> = {
      ...SECRETS,
      DATABASE_URL: databaseUrl,
      REDIS_URL: opts.redisUrl,
      OURA_API_BASE_URL: sim.url,
      OURA_AUTHORIZE_URL: `${sim.url}/oauth/authorize`,
      PUBLIC_BASE_URL: apiUrl,
      REDIS_KEY_PREFIX: prefix,
      OURA_APP_RATE_LIMIT: `${opts.limit.limit}/${opts.limit.windowS}`,
      LOG_LEVEL: opts.logLevel,
      // The webhook pipeline alone: no historical load on connect, no periodic re-sync
      // (both run at background priority on the same budget and would blur the counts).
      BACKFILL_DAYS: '0',
      RECONCILE_INTERVAL_S: String(30 * 86_400),
      ...(opts.workerConcurrency ? { WORKER_CONCURRENCY: String(opts.workerConcurrency) } : {}),
      ...opts.env,
    };

    const children: Array<{ role: string; child: ChildProcess; stderr: () => string }> = [];
    cleanups.push(() => Promise.all(children.map(({ child }) => stopChild(child))));
    function spawnProcess(mode: 'api' | 'worker', extra: Record<string, string> = {}) {
      const args = mainJs
        ? [...serviceNodeOptions(mode), ...(opts.built?.nodeFlags?.[mode] ?? []), mainJs, mode]
        : ['--import', 'tsx', path.join(repoRoot, 'src/main.ts'), mode];
      const child = spawn(process.execPath, args, {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...env, ...(mainJs ? { NODE_ENV: 'production' } : {}), ...extra },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      const keep = (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-8000);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      child.on('exit', (code, signal) => {
        if (code || (signal && signal !== 'SIGTERM')) process.stderr.write(`[${mode} ${child.pid} exited ${code ?? signal}] ${stderr}\n`);
      });
      children.push({ role: mode, child, stderr: () => stderr });
      return child;
    }

    // The service, as deployed: one api process and N worker processes.
    spawnProcess('api', { PORT: String(apiPort), HOST: '127.0.0.1' });
    for (let i = 0; i < opts.workers; i++) spawnProcess('worker');

    // Users connect through the real OAuth flow, but through a setup-only api in this
    // process with its own key prefix and no tight limit, so connecting a hundred users
    // costs seconds and none of the measured budget.
    const setupPort = await freePort();
    const setupUrl = `http://127.0.0.1:${setupPort}`;
    const setupDeps = createDeps(
      loadConfig({ ...env, PUBLIC_BASE_URL: setupUrl, REDIS_KEY_PREFIX: `${prefix}-setup`, OURA_APP_RATE_LIMIT: '1000000/1', LOG_LEVEL: 'warn', BACKFILL_DAYS: '0' }),
      { prefix: `${prefix}-setup` },
    );
    const setupApp = await buildApp(setupDeps);
    await setupApp.listen({ port: setupPort, host: '127.0.0.1' });
    let setupClosed = false;
    const closeSetup = async () => {
      if (setupClosed) return;
      setupClosed = true;
      await setupApp.close();
      await setupDeps.close();
    };
    cleanups.push(closeSetup);

    let connected = 0;
    /** /oauth/start → simulator consent (a new simulated user) → /oauth/callback. */
    async function connectUser(): Promise<string> {
      // The connect routes allow 60 a minute per client address; each user is its own browser.
      const n = ++connected;
      const headers = { 'x-forwarded-for': `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}` };
      const start = await fetch(`${setupUrl}/oauth/start`, { redirect: 'manual', headers });
      if (start.status !== 302) throw new Error(`/oauth/start → ${start.status}: ${await start.text()}`);
      const consent = await fetch(start.headers.get('location')!, { redirect: 'manual' });
      if (consent.status !== 302) throw new Error(`authorize → ${consent.status}: ${await consent.text()}`);
      const callback = await fetch(consent.headers.get('location')!, { redirect: 'manual', headers });
      const body = (await callback.json()) as { user_id?: string };
      if (callback.status !== 200 || !body.user_id) throw new Error(`/oauth/callback → ${callback.status}: ${JSON.stringify(body)}`);
      return body.user_id;
    }
    async function connectUsers(n: number, parallel = 8): Promise<string[]> {
      const ids: string[] = new Array(n);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(parallel, n) }, async () => {
          while (next < n) {
            const i = next++;
            ids[i] = await connectUser();
          }
        }),
      );
      return ids;
    }

    const simJson = simJsonClient(sim.url);

    /** One subscription per (event_type, data_type), verified by the simulator against the api process. */
    async function subscribeAll(dataTypes: readonly string[]): Promise<void> {
      for (const data_type of dataTypes) {
        for (const event_type of ['create', 'update', 'delete']) {
          const res = await fetch(`${sim.url}/v2/webhook/subscription`, {
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'x-client-id': SECRETS.OURA_CLIENT_ID,
              'x-client-secret': SECRETS.OURA_CLIENT_SECRET,
            },
            body: JSON.stringify({
              callback_url: `${apiUrl}/webhooks/oura`,
              verification_token: SECRETS.OURA_WEBHOOK_VERIFICATION_TOKEN,
              event_type,
              data_type,
            }),
          });
          if (res.status !== 201) throw new Error(`subscription ${event_type}/${data_type} → ${res.status}: ${await res.text()}`);
        }
      }
    }

    const queueConnection = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
    const queue = new Queue(EVENTS_QUEUE, { connection: queueConnection, prefix });
    cleanups.push(async () => {
      await queue.close();
      await queueConnection.quit();
    });

    /** Waits until the api answers /readyz and every worker process is listening on the queue. */
    async function ready(): Promise<void> {
      await eventually('api ready', async () => (await fetch(`${apiUrl}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 200 });
      await eventually(`${opts.workers} worker processes`, async () => (await queue.getWorkersCount()) >= opts.workers, { timeoutMs: 60_000, intervalMs: 200 });
    }

    return {
      sim,
      pool,
      redis,
      queue,
      prefix,
      dbName,
      apiUrl,
      env,
      children,
      simJson,
      subscribeAll,
      connectUsers,
      closeSetup,
      ready,
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
export type BenchStack = Awaited<ReturnType<typeof startBenchStack>>;
