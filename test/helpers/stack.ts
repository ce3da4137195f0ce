import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { createDeps, type Deps } from '../../src/deps.js';
import { createLogger } from '../../src/logger.js';
import { buildApp } from '../../src/server/app.js';
import { startSimulator, type SimOptions } from '../../src/sim/index.js';
import { startWorkers } from '../../src/workers/index.js';
import { eventually, freePort, simJsonClient } from './util.js';
import { clearPrefix, createTestDatabase, getServices, TEST_SECRETS, testConfig, uniquePrefix, type TestDatabase } from './env.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * Every stack writes its logs (in-process and child processes) here, with the
 * secrets its run produced beside them; test/zz-logs.test.ts checks that no
 * secret reached any log. `npm test` empties the folder first.
 */
export const TEST_LOG_DIR = path.join(repoRoot, '.test-logs');
const TEST_LOG_LEVEL = process.env.TEST_LOG_LEVEL ?? 'debug';

export { eventually, freePort };

export interface Stack {
  sim: Awaited<ReturnType<typeof startSimulator>>;
  db: TestDatabase;
  deps: Deps;
  app: FastifyInstance;
  apiUrl: string;
  prefix: string;
  env: Record<string, string>;
  /** Runs a sim control or Oura route and returns the parsed JSON. */
  simJson: (method: string, route: string, body?: unknown) => Promise<any>;
  /** Connects a new simulated user through /oauth/start → sim authorize → /oauth/callback. */
  connectUser: (simUser?: string) => Promise<string>;
  /** Creates one subscription per (event_type, data_type) at the simulator, verified against our API. */
  subscribeAll: (dataTypes: readonly string[]) => Promise<void>;
  /** Spawns `src/main.ts <mode>` as its own process with the stack's environment. */
  spawnProcess: (mode: 'api' | 'worker' | 'all', extraEnv?: Record<string, string>) => ChildProcess;
  close: () => Promise<void>;
}

export async function startStack(
  opts: { sim?: Partial<SimOptions>; env?: Record<string, string>; inProcessWorker?: boolean; label?: string } = {},
): Promise<Stack> {
  const { redisUrl } = await getServices();
  const sim = await startSimulator({
    clientId: TEST_SECRETS.OURA_CLIENT_ID,
    clientSecret: TEST_SECRETS.OURA_CLIENT_SECRET,
    port: 0,
    host: '127.0.0.1',
    ...opts.sim,
  });
  const db = await createTestDatabase(opts.label ?? 'stack');
  const prefix = uniquePrefix(opts.label ?? 'stack');
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    ...TEST_SECRETS,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    OURA_API_BASE_URL: sim.url,
    OURA_AUTHORIZE_URL: `${sim.url}/oauth/authorize`,
    PUBLIC_BASE_URL: apiUrl,
    REDIS_KEY_PREFIX: prefix,
    // Tests of the webhook path count requests; the backfill tests turn the load on connect back on.
    BACKFILL_DAYS: '0',
    ...opts.env,
  };
  mkdirSync(TEST_LOG_DIR, { recursive: true });
  const logFile = path.join(TEST_LOG_DIR, `${prefix}.log`);
  const logStream = createWriteStream(logFile, { flags: 'a' });
  const deps = createDeps(testConfig(env), { prefix, log: createLogger(TEST_LOG_LEVEL, logStream) });
  const app = await buildApp(deps);
  await app.listen({ port, host: '127.0.0.1' });
  const workers = opts.inProcessWorker === false ? null : startWorkers(deps);
  const children: ChildProcess[] = [];

  const simJson = simJsonClient(sim.url);

  async function connectUser(simUser?: string): Promise<string> {
    const start = await fetch(`${apiUrl}/oauth/start`, { redirect: 'manual' });
    if (start.status !== 302) throw new Error(`/oauth/start → ${start.status}`);
    const authorize = new URL(start.headers.get('location')!);
    if (simUser) authorize.searchParams.set('sim_user', simUser);
    const consent = await fetch(authorize, { redirect: 'manual' });
    if (consent.status !== 302) throw new Error(`authorize → ${consent.status}: ${await consent.text()}`);
    const callback = await fetch(consent.headers.get('location')!, { redirect: 'manual' });
    const body = (await callback.json()) as { user_id?: string };
    if (callback.status !== 200 || !body.user_id) throw new Error(`/oauth/callback → ${callback.status}: ${JSON.stringify(body)}`);
    return body.user_id;
  }

  async function subscribeAll(dataTypes: readonly string[]) {
    for (const data_type of dataTypes) {
      for (const event_type of ['create', 'update', 'delete']) {
        const res = await fetch(`${sim.url}/v2/webhook/subscription`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'x-client-id': TEST_SECRETS.OURA_CLIENT_ID,
            'x-client-secret': TEST_SECRETS.OURA_CLIENT_SECRET,
          },
          body: JSON.stringify({
            callback_url: `${apiUrl}/webhooks/oura`,
            verification_token: TEST_SECRETS.OURA_WEBHOOK_VERIFICATION_TOKEN,
            event_type,
            data_type,
          }),
        });
        if (res.status !== 201) throw new Error(`subscription ${event_type}/${data_type} → ${res.status}: ${await res.text()}`);
      }
    }
  }

  function spawnProcess(mode: 'api' | 'worker' | 'all', extraEnv: Record<string, string> = {}): ChildProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/main.ts'), mode], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', ...env, LOG_LEVEL: TEST_LOG_LEVEL, METRICS_PORT: '0', ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(createWriteStream(logFile, { flags: 'a' }));
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      if (code && code !== 0) process.stderr.write(`[${mode} process exited ${code} ${signal ?? ''}] ${stderr}\n`);
    });
    children.push(child);
    return child;
  }

  return {
    sim,
    db,
    deps,
    app,
    apiUrl,
    prefix,
    env,
    simJson,
    connectUser,
    subscribeAll,
    spawnProcess,
    close: async () => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      await workers?.close();
      await app.close();
      await deps.close();
      const secrets = [
        ...sim.state.allSecrets(),
        ...sim.state.deliveries.map((d) => d.signature).filter((x): x is string => Boolean(x)),
        ...Object.values(TEST_SECRETS),
      ];
      writeFileSync(path.join(TEST_LOG_DIR, `${prefix}.secrets.json`), JSON.stringify(secrets));
      await sim.close();
      logStream.end();
      await clearPrefix(redisUrl, prefix);
      await db.drop();
    },
  };
}
