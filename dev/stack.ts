/**
 * One dev stack for the tests, the benchmarks and the demo: the Oura
 * simulator in this process, a database of its own (every migration
 * applied), a Redis key prefix of its own, and the service — its api and
 * workers in this process, or as their own processes as deployed.
 *
 *   const stack = await startStack({ label: 'e2e' });                      // a test: api and worker in this process
 *   const stack = await startStack({ api: 'process', workers: 4, ... });   // a benchmark: the service as deployed
 *
 * `close()` stops everything it started, clears the prefix and drops the
 * database (unless the stack was given a database by name, to look at later).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, writeFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../src/config.js';
import { createDeps, type Deps } from '../src/deps.js';
import { createLogger } from '../src/logger.js';
import { buildApp } from '../src/server/app.js';
import { startSimulator, type SimOptions } from '../src/sim/index.js';
import { startWorkers } from '../src/workers/index.js';
import { nodeArgs, repoRoot, stopChild, tsxRuntime, type Role, type Runtime } from './service.js';
import { clearPrefix, createDatabase, getServices, uniquePrefix, type Database } from './services.js';
import { eventually, freePort, simJsonClient } from './util.js';

/** The application's credentials at Oura (the simulator) and the service's own secrets. */
export interface Secrets {
  OURA_CLIENT_ID: string;
  OURA_CLIENT_SECRET: string;
  OURA_WEBHOOK_VERIFICATION_TOKEN: string;
  TOKEN_ENCRYPTION_KEY: string;
  ADMIN_TOKEN: string;
}

/** Secrets no one has seen before. */
export function randomSecrets(): Secrets {
  return {
    OURA_CLIENT_ID: `dev-${randomBytes(6).toString('hex')}`,
    OURA_CLIENT_SECRET: randomBytes(24).toString('base64url'),
    OURA_WEBHOOK_VERIFICATION_TOKEN: randomBytes(16).toString('base64url'),
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    ADMIN_TOKEN: randomBytes(24).toString('base64url'),
  };
}

export interface StackOptions {
  /** Names the database and the key prefix (each with a random suffix). */
  label?: string;
  /** A database of this name, dropped and re-created, and kept at close. Default: a fresh one, dropped at close. */
  database?: string;
  /** The Redis key prefix, cleared at start and at close. Default: the label with a random suffix. */
  prefix?: string;
  /** Postgres (a connection that may create databases) and Redis. Default: getServices(). */
  services?: { adminDatabaseUrl: string; redisUrl: string };
  /** Default: randomSecrets(). */
  secrets?: Secrets;
  sim?: Partial<SimOptions>;
  /** Service settings over the stack's own (database, Redis, prefix, simulator, public URL). */
  env?: Record<string, string>;
  /** Settings of the service in this process only, over `env`. */
  inProcessEnv?: Record<string, string>;
  /** Where the api runs: in this process (default) or as its own process, as deployed. */
  api?: 'in-process' | 'process';
  /** Workers in this process (default), or this many worker processes (more with spawnProcess). */
  workers?: 'in-process' | number;
  /** How spawned processes run the code. Default: tsx. */
  runtime?: Runtime;
  /** LOG_LEVEL of the service, here and in spawned processes. Default: info. */
  logLevel?: string;
  /**
   * Where the service logs: this process's service and the output of every
   * spawned process, appended. Without it this process's service logs
   * nothing and a spawned process's output is kept only as its tail.
   */
  logFile?: string;
  /** Written at close: every secret the run produced (a JSON array), for a scan of the logs. */
  secretsFile?: string;
  /**
   * Users connect through an api of their own in this process, with its own
   * key prefix and no rate limit, until closeSetup(): connecting many users
   * then costs seconds and none of the budget being measured.
   */
  setupApi?: boolean;
  /** How close() ends spawned processes: SIGTERM and wait for them (default) or SIGKILL. */
  stop?: 'graceful' | 'kill';
}

/** A process the stack spawned, with the last few KB of its output. */
export interface StackChild {
  role: Role;
  child: ChildProcess;
  tail: () => string;
}

/** SIGTERM's grace before close() kills a spawned process. */
const STOP_GRACE_MS = 15_000;

export async function startStack(opts: StackOptions = {}) {
  const { adminDatabaseUrl, redisUrl } = opts.services ?? (await getServices());
  const label = opts.label ?? 'dev';
  const secrets = opts.secrets ?? randomSecrets();
  const runtime = opts.runtime ?? tsxRuntime();
  const logLevel = opts.logLevel ?? 'info';
  const prefix = opts.prefix ?? uniquePrefix(label);
  const apiInProcess = (opts.api ?? 'in-process') === 'in-process';
  const workersAtStart = opts.workers === undefined || opts.workers === 'in-process' ? 0 : opts.workers;

  const cleanups: Array<() => Promise<unknown>> = [];
  /** Runs every cleanup once, last first; a failing one does not stop the others. */
  async function cleanup(): Promise<void> {
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: Error) => process.stderr.write(`stack ${prefix}: cleanup: ${err.message}\n`));
  }

  // The Redis the service uses: a test may give it a database of its own (REDIS_URL in env).
  const serviceRedisUrl = opts.env?.REDIS_URL ?? redisUrl;

  try {
    const keysCleared = await clearPrefix(serviceRedisUrl, prefix);
    const db: Database = await createDatabase(adminDatabaseUrl, opts.database ? { name: opts.database } : { label });
    if (!opts.database) cleanups.push(() => db.drop());
    cleanups.push(() => clearPrefix(serviceRedisUrl, prefix));

    let logStream: WriteStream | null = null;
    if (opts.logFile) {
      mkdirSync(path.dirname(opts.logFile), { recursive: true });
      const stream = createWriteStream(opts.logFile, { flags: 'a' });
      logStream = stream;
      cleanups.push(() => new Promise<void>((r) => stream.end(() => r())));
    }
    const log = logStream ? createLogger(logLevel, logStream) : createLogger('silent');

    const sim = await startSimulator({
      clientId: secrets.OURA_CLIENT_ID,
      clientSecret: secrets.OURA_CLIENT_SECRET,
      port: 0,
      host: '127.0.0.1',
      ...opts.sim,
    });
    cleanups.push(() => sim.close());
    if (opts.secretsFile) {
      const file = opts.secretsFile;
      cleanups.push(async () => {
        const all = [
          ...sim.state.allSecrets(),
          ...sim.state.deliveries.map((d) => d.signature).filter((x): x is string => Boolean(x)),
          ...Object.values(secrets),
        ];
        mkdirSync(path.dirname(file), { recursive: true });
        writeFileSync(file, JSON.stringify(all));
      });
    }

    const apiPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const env: Record<string, string> = {
      ...secrets,
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      OURA_API_BASE_URL: sim.url,
      OURA_AUTHORIZE_URL: `${sim.url}/oauth/authorize`,
      PUBLIC_BASE_URL: apiUrl,
      ...opts.env,
    };

    // The service in this process: the api when it runs here, else what the caller reads
    // Postgres and the queues with.
    const deps: Deps = createDeps(loadConfig({ ...env, ...opts.inProcessEnv }), { prefix, log, ...(apiInProcess ? {} : { dbPoolSize: 4 }) });
    cleanups.push(() => deps.close());
    let app: FastifyInstance | null = null;
    if (apiInProcess) {
      const a = await buildApp(deps);
      app = a;
      cleanups.push(() => a.close());
      await a.listen({ port: apiPort, host: '127.0.0.1' });
    }
    if (opts.workers === undefined || opts.workers === 'in-process') {
      const workers = startWorkers(deps);
      cleanups.push(() => workers.close());
    }

    const children: StackChild[] = [];
    const killAll = () => {
      for (const { child } of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    // Should this process exit without close(), its service processes go with it.
    process.on('exit', killAll);
    cleanups.push(async () => {
      process.off('exit', killAll);
      if (opts.stop === 'kill') killAll();
      else await Promise.all(children.map(({ child }) => stopChild(child, STOP_GRACE_MS)));
    });

    /** Runs the service (`main <role>`) as its own process with the stack's environment. */
    function spawnProcess(role: Role, extraEnv: Record<string, string> = {}): ChildProcess {
      const child = spawn(process.execPath, nodeArgs(runtime, 'main', [role], role), {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...runtime.env, ...env, LOG_LEVEL: logLevel, METRICS_PORT: '0', ...extraEnv },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let tail = '';
      const keep = (d: Buffer) => {
        tail = (tail + d.toString()).slice(-4000);
      };
      child.stdout?.on('data', keep);
      child.stderr?.on('data', keep);
      if (opts.logFile) {
        child.stdout?.pipe(createWriteStream(opts.logFile, { flags: 'a' }));
        child.stderr?.pipe(createWriteStream(opts.logFile, { flags: 'a' }));
      }
      child.on('exit', (code) => {
        if (code) process.stderr.write(`[${role} ${child.pid} exited ${code}] ${tail}\n`);
      });
      children.push({ role, child, tail: () => tail });
      return child;
    }

    if (!apiInProcess) spawnProcess('api', { PORT: String(apiPort), HOST: '127.0.0.1' });
    for (let i = 0; i < workersAtStart; i++) spawnProcess('worker');

    let setup: { url: string; close: () => Promise<void> } | null = null;
    if (opts.setupApi) {
      const setupPort = await freePort();
      const setupUrl = `http://127.0.0.1:${setupPort}`;
      const setupPrefix = `${prefix}-setup`;
      const setupDeps = createDeps(
        loadConfig({ ...env, ...opts.inProcessEnv, PUBLIC_BASE_URL: setupUrl, REDIS_KEY_PREFIX: setupPrefix, OURA_APP_RATE_LIMIT: '1000000/1', BACKFILL_DAYS: '0' }),
        { prefix: setupPrefix, log },
      );
      const setupApp = await buildApp(setupDeps);
      let closed = false;
      const close = async () => {
        if (closed) return;
        closed = true;
        setup = null;
        await setupApp.close();
        await setupDeps.close();
        await clearPrefix(serviceRedisUrl, setupPrefix);
      };
      cleanups.push(close);
      await setupApp.listen({ port: setupPort, host: '127.0.0.1' });
      setup = { url: setupUrl, close };
    }

    const simJson = simJsonClient(sim.url);

    /**
     * Connects a user through the api (or the setup api): a new simulated user, or
     * `simUser`; `clientAddress` is the browser's (see connectThroughOAuth).
     */
    async function connectUser(simUser?: string, { clientAddress }: { clientAddress?: string } = {}): Promise<string> {
      return connectThroughOAuth(setup?.url ?? apiUrl, { simUser, clientAddress });
    }

    let browsers = 0;
    /** `n` new simulated users, `parallel` at a time, each from a browser of its own. */
    async function connectUsers(n: number, { parallel = 8 } = {}): Promise<string[]> {
      const ids: string[] = new Array(n);
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(parallel, n) }, async () => {
          while (next < n) {
            const i = next++;
            const b = ++browsers;
            ids[i] = await connectUser(undefined, { clientAddress: `10.${(b >> 16) & 255}.${(b >> 8) & 255}.${b & 255}` });
          }
        }),
      );
      return ids;
    }

    /** One subscription per (event_type, data_type) at the simulator, which verifies it against the api first. */
    async function subscribeAll(dataTypes: readonly string[]): Promise<void> {
      await subscribe(sim.url, secrets, `${apiUrl}/webhooks/oura`, dataTypes);
    }

    /** Waits until the api answers /readyz and the worker processes started with the stack listen on the queue. */
    async function ready(): Promise<void> {
      await eventually('api ready', async () => (await fetch(`${apiUrl}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 200 });
      await eventually(`${workersAtStart} worker processes`, async () => (await deps.queue.getWorkersCount()) >= workersAtStart, {
        timeoutMs: 60_000,
        intervalMs: 200,
      });
    }

    return {
      sim,
      db,
      /** This process's service: the api's own when it runs here. */
      deps,
      pool: deps.pool,
      /** The api, when it runs in this process. */
      app,
      apiUrl,
      prefix,
      /** Keys an earlier run had left under the prefix, removed at start. */
      keysCleared,
      /** The service's environment (without LOG_LEVEL), as spawned processes get it. */
      env,
      secrets,
      children,
      simJson,
      connectUser,
      connectUsers,
      subscribeAll,
      spawnProcess,
      ready,
      /** Closes the setup api (setupApi), so nothing but the service is left talking to the simulator. */
      closeSetup: async () => setup?.close(),
      close: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

export type Stack = Awaited<ReturnType<typeof startStack>>;

/**
 * Connects a user as a browser does, through the api at `apiUrl`:
 * /oauth/start → the simulator's consent → /oauth/callback. A new simulated
 * user, or `simUser`; `clientAddress` is the browser's (the connect routes
 * are rate limited per client address). Returns the user's id.
 */
export async function connectThroughOAuth(apiUrl: string, { simUser, clientAddress }: { simUser?: string; clientAddress?: string } = {}): Promise<string> {
  const headers: Record<string, string> = clientAddress ? { 'x-forwarded-for': clientAddress } : {};
  const start = await fetch(`${apiUrl}/oauth/start`, { redirect: 'manual', headers });
  if (start.status !== 302) throw new Error(`/oauth/start → ${start.status}: ${await start.text()}`);
  const authorize = new URL(start.headers.get('location')!);
  if (simUser) authorize.searchParams.set('sim_user', simUser);
  const consent = await fetch(authorize, { redirect: 'manual' });
  if (consent.status !== 302) throw new Error(`authorize → ${consent.status}: ${await consent.text()}`);
  const callback = await fetch(consent.headers.get('location')!, { redirect: 'manual', headers });
  const body = (await callback.json()) as { user_id?: string };
  if (callback.status !== 200 || !body.user_id) throw new Error(`/oauth/callback → ${callback.status}: ${JSON.stringify(body)}`);
  return body.user_id;
}

/**
 * One webhook subscription per (event_type, data_type) at the simulator at
 * `simUrl`, calling `callbackUrl`; the simulator verifies each against it first.
 */
export async function subscribe(
  simUrl: string,
  secrets: Pick<Secrets, 'OURA_CLIENT_ID' | 'OURA_CLIENT_SECRET' | 'OURA_WEBHOOK_VERIFICATION_TOKEN'>,
  callbackUrl: string,
  dataTypes: readonly string[],
): Promise<void> {
  for (const data_type of dataTypes) {
    for (const event_type of ['create', 'update', 'delete']) {
      const res = await fetch(`${simUrl}/v2/webhook/subscription`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-client-id': secrets.OURA_CLIENT_ID,
          'x-client-secret': secrets.OURA_CLIENT_SECRET,
        },
        body: JSON.stringify({ callback_url: callbackUrl, verification_token: secrets.OURA_WEBHOOK_VERIFICATION_TOKEN, event_type, data_type }),
      });
      if (res.status !== 201) throw new Error(`subscription ${event_type}/${data_type} → ${res.status}: ${await res.text()}`);
    }
  }
}
