/**
 * `npm run test:image`: the container image, built from this checkout with
 * docker or podman (dev/container.ts) and run as compose runs it, against
 * this machine's Postgres and Redis (`--network host`), with a database and a
 * Redis key prefix of its own:
 *
 *   - the image holds production dependencies only (checked against
 *     package-lock.json), no src/ and no test file; its size is reported;
 *   - compose accepts docker-compose.yml;
 *   - migrations run from the image (compose's `migrate` entrypoint) and
 *     create the database;
 *   - `api` and `worker` start as uid 1000 and answer /readyz;
 *   - every service's healthcheck command exists in its image (and, for api
 *     and worker, passes in the running container);
 *   - a user connects through the simulator, run from the same image;
 *   - a signed webhook's document lands in Postgres, as the simulator has it;
 *   - SIGTERM: api and worker exit 0 within compose's stop_grace_period;
 *   - no secret reached the service's logs.
 *
 * Every container it starts is removed at the end, failed or not (and on
 * Ctrl-C). Logs: .test-logs/image/.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { createContainerCli, findEngine, lastLine, runCommand } from '../dev/container.js';
import { composeDurationS, composeEnv, composeServices, dockerfile, serviceNodeOptions } from '../dev/deployment.js';
import { repoRoot } from '../dev/service.js';
import { clearPrefix, dropDatabase, getServices, uniqueDatabaseName, uniquePrefix, withDatabase } from '../dev/services.js';
import { connectThroughOAuth, randomSecrets, subscribe } from '../dev/stack.js';
import { eventually, freePort, simJsonClient } from '../dev/util.js';
import { checkLogs, TEST_LOG_DIR } from './check-logs.js';

const TAG = 'oura-ingest:test';
const LOG_DIR = path.join(TEST_LOG_DIR, 'image');
/** The service's own logs (scanned for secrets); the build's and the simulator's sit one level up. */
const SERVICE_LOG_DIR = path.join(LOG_DIR, 'service');

const found = await findEngine();
if ('missing' in found) {
  process.stderr.write(`npm run test:image: ${found.missing}\n`);
  process.exit(1);
}
const engine = createContainerCli(found);
const compose = composeServices();
const runId = randomBytes(3).toString('hex');
const label = { 'oura-ingest.test': runId };
const containerName = (role: string) => `oura-ingest-test-${runId}-${role}`;
/** Every container this run created (or tried to), removed at the end. */
const created: string[] = [];

/** Ctrl-C or a kill: the containers go with this process. */
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (created.length) spawnSync(found.name, ['rm', '-f', ...created], { env: found.env, stdio: 'ignore', timeout: 60_000 });
    process.exit(130);
  });
}

/** An image name as compose reads it: no registry means Docker Hub (podman needs it said). */
const qualified = (image: string) => {
  const first = image.split('/')[0]!;
  if (image.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return image;
  return `docker.io/${image.includes('/') ? '' : 'library/'}${image}`;
};
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

describe(`the image, built and run with ${found.name}`, { concurrency: 1 }, () => {
  const secrets = randomSecrets();
  const prefix = uniquePrefix('image');
  const dbName = uniqueDatabaseName('image');
  let adminDatabaseUrl = '';
  let redisUrl = '';
  let databaseUrl = '';
  let pool: pg.Pool | null = null;
  const ports = { api: 0, worker: 0, sim: 0 };
  const url = { api: '', sim: '' };
  /** What later steps need: a failed step skips those that depend on it rather than failing them again. */
  const done = { built: false, migrated: false, started: false, connected: '' };

  before(async () => {
    rmSync(LOG_DIR, { recursive: true, force: true });
    mkdirSync(SERVICE_LOG_DIR, { recursive: true });
    ({ adminDatabaseUrl, redisUrl } = await getServices());
    databaseUrl = withDatabase(adminDatabaseUrl, dbName);
    for (const role of ['api', 'worker', 'sim'] as const) ports[role] = await freePort();
    url.api = `http://127.0.0.1:${ports.api}`;
    url.sim = `http://127.0.0.1:${ports.sim}`;

    const buildLog = path.join(LOG_DIR, 'build.log');
    process.stderr.write(`test:image: building ${TAG} with ${found.name} (log: ${path.relative(repoRoot, buildLog)})\n`);
    const t0 = Date.now();
    try {
      await engine.build(TAG, (chunk) => appendFileSync(buildLog, chunk));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${readFileSync(buildLog, 'utf8').split('\n').slice(-30).join('\n')}`, { cause: err });
    }
    process.stderr.write(`test:image: built in ${seconds(Date.now() - t0)}\n`);
    done.built = true;
  });

  after(async () => {
    // Logs first (the containers hold them), then everything this run made.
    for (const name of created) {
      const role = name.slice(containerName('').length);
      const dir = role === 'sim' || role.startsWith('healthcheck') ? LOG_DIR : SERVICE_LOG_DIR;
      writeFileSync(path.join(dir, `${role}.log`), await engine.logs(name));
    }
    const removed = await engine.remove(created);
    await pool?.end();
    await dropDatabase(adminDatabaseUrl, dbName).catch((err: Error) => process.stderr.write(`test:image: dropping ${dbName}: ${err.message}\n`));
    await clearPrefix(redisUrl, prefix).catch((err: Error) => process.stderr.write(`test:image: clearing ${prefix}: ${err.message}\n`));
    const left = (await engine.cli(['ps', '-a', '--filter', `label=oura-ingest.test=${runId}`, '--format', '{{.Names}}'])).trim();
    assert.ok(removed && left === '', `containers left behind: ${left || '(rm failed)'}`);
  });

  /** Starts a container of the image under this run's label; it is removed at the end. */
  async function start(role: string, env: Record<string, string>, args: string[], entrypoint?: string[]): Promise<string> {
    const name = containerName(role);
    created.push(name);
    await engine.start({ name, image: TAG, env, labels: label, entrypoint: entrypoint?.[0], args: [...(entrypoint?.slice(1) ?? []), ...args] });
    return name;
  }

  /** Fails `what` with the tail of a container's log. */
  async function withLog<T>(name: string, what: () => Promise<T>): Promise<T> {
    try {
      return await what();
    } catch (err) {
      const tail = (await engine.logs(name)).trim().split('\n').slice(-15).join('\n');
      throw new Error(`${(err as Error).message}\n--- ${name} (last lines) ---\n${tail}`, { cause: err });
    }
  }

  test('holds production dependencies only, no src/ and no test file; its size', async (t) => {
    assert.ok(done.built, 'the image was built');
    // Lists /app from inside the image: its entries, the packages under node_modules, our files outside it.
    const list = `
      const fs = require('fs'), path = require('path');
      const packages = [];
      const walk = (dir) => { for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        if (!e.isDirectory() || e.name.startsWith('.')) continue;
        const p = path.join(dir, e.name);
        if (e.name.startsWith('@')) { walk(p); continue; }
        packages.push(p);
        if (fs.existsSync(path.join(p, 'node_modules'))) walk(path.join(p, 'node_modules'));
      } };
      walk('node_modules');
      const files = [];
      const all = (dir) => { for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) { files.push(p + '/'); if (p !== 'node_modules') all(p); } else files.push(p);
      } };
      all('.');
      console.log(JSON.stringify({ top: fs.readdirSync('.'), packages, files }));`;
    const r = await runCommand(found.name, ['run', '--rm', '--network', 'host', '--entrypoint', 'node', TAG, '-e', list], { env: found.env });
    assert.equal(r.code, 0, lastLine(r.stderr));
    const { top, packages, files } = JSON.parse(r.stdout) as { top: string[]; packages: string[]; files: string[] };

    const lock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
    };
    // The lockfile marks what only development needs: `dev`, and `devOptional` (a devDependency that a
    // production package takes only as an optional peer, which `npm ci --omit=dev` alone still installs).
    const devOnly = packages.filter((p) => !lock.packages[p] || lock.packages[p].dev || lock.packages[p].devOptional);
    assert.ok(packages.length > 50, `found the installed packages (${packages.length})`);
    assert.deepEqual(
      devOnly.map((p) => `${p.replace(/^node_modules\//, '')}${lock.packages[p] ? '' : ' (not in package-lock.json)'}`),
      [],
      'packages in the image that only development needs',
    );

    assert.deepEqual(top.filter((e) => ['src', 'test', 'dev', 'bench', 'scripts', 'docs', '.git', '.test-logs'].includes(e)), [], 'sources, tests or tooling in /app');
    const ours = files.filter((f) => !f.startsWith('node_modules/'));
    assert.ok(ours.includes('dist/main.js') && ours.includes('dist/sim/main.js') && ours.includes('migrations/'), 'dist/ and migrations/ are there');
    assert.deepEqual(
      ours.filter((f) => /(^|\/)(src|test|tests|__tests__)\/$/.test(f) || /\.(test|spec)\.[cm]?[jt]s(\.map)?$/.test(f) || /\.[cm]?ts$/.test(f)),
      [],
      'TypeScript sources or test files in /app outside node_modules',
    );

    const size = await engine.imageSize(TAG);
    const base = /^FROM\s+(\S+)/m.exec(dockerfile())?.[1] ?? '';
    const baseSize = base && (await engine.imageExists(base)) ? await engine.imageSize(base) : 0;
    t.diagnostic(
      `image ${TAG}: ${mb(size)}${baseSize ? ` (its base ${base}: ${mb(baseSize)}, so ${mb(size - baseSize)} of our own)` : ''}; ${packages.length} packages in node_modules`,
    );
    process.stderr.write(`test:image: image size ${mb(size)}\n`);
  });

  test('compose accepts docker-compose.yml', async (t) => {
    const file = path.join(repoRoot, 'docker-compose.yml');
    if (found.name === 'docker' && (await runCommand('docker', ['compose', 'version'])).code === 0) {
      const r = await runCommand('docker', ['compose', '-f', file, '--profile', 'sim', 'config', '--quiet'], { env: { ...process.env, ...found.env } });
      assert.equal(r.code, 0, `docker compose config: ${lastLine(r.stderr)}`);
      t.diagnostic('docker compose config: accepted');
      return;
    }
    const help = await runCommand('podman-compose', ['--help']);
    assert.notEqual(help.code, null, 'neither `docker compose` nor `podman-compose` is installed (apt-get install podman-compose)');
    let out: string;
    let how: string;
    if (/\bconfig\b/.test(help.stdout)) {
      how = 'podman-compose config';
      const r = await runCommand('podman-compose', ['-f', file, 'config'], { env: found.env });
      assert.equal(r.code, 0, `${how}: ${lastLine(r.stderr) || lastLine(r.stdout)}`);
      out = r.stdout;
    } else {
      // podman-compose 1.0 (Debian 12) has no `config`: its dry run of `up` reads the file as `up`
      // would, resolving every service to the podman commands it would run, and prints them. Its
      // podman is `true`, so the volumes and network it checks for first are not created.
      how = 'podman-compose --dry-run up';
      const truePath = spawnSync('sh', ['-c', 'command -v true'], { encoding: 'utf8' }).stdout.trim();
      const r = await runCommand('podman-compose', ['--podman-path', truePath, '--dry-run', '-p', `oura-ingest-check-${runId}`, '-f', file, 'up', '--no-build'], { env: found.env });
      assert.equal(r.code, 0, `${how}: ${lastLine(r.stderr) || lastLine(r.stdout)}`);
      out = r.stdout;
      for (const service of Object.keys(compose)) assert.match(out, new RegExp(`--name=oura-ingest-check-${runId}_${service}_1 `), `${how} resolves service ${service}`);
    }
    assert.doesNotMatch(out, /\$\{/, `${how} left a \${…} uninterpolated`);
    t.diagnostic(`${how}: accepted, every \${…} interpolated`);
  });

  test('migrations run from the image (compose’s migrate entrypoint) and create the database', async (t) => {
    assert.ok(done.built, 'the image was built');
    const entrypoint = compose.migrate?.entrypoint;
    assert.ok(entrypoint?.length, 'compose’s migrate service has an entrypoint');
    const name = containerName('migrate');
    created.push(name);
    const t0 = Date.now();
    const r = await engine.runToEnd({ name, image: TAG, env: { DATABASE_URL: databaseUrl }, entrypoint: entrypoint[0], args: entrypoint.slice(1) });
    assert.equal(r.code, 0, `migrate exited ${r.code}: ${lastLine(r.stderr) || lastLine(r.stdout)}`);
    assert.match(r.stdout, new RegExp(`created database ${dbName}`));
    assert.match(r.stdout, /migrations applied/);

    pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    const journal = JSON.parse(readFileSync(path.join(repoRoot, 'migrations/meta/_journal.json'), 'utf8')) as { entries: unknown[] };
    const { rows } = await pool.query<{ n: number }>('select count(*)::int as n from drizzle.__drizzle_migrations');
    assert.equal(rows[0]!.n, journal.entries.length, 'every migration of migrations/ is applied');
    const { rows: kinds } = await pool.query<{ relkind: string }>(`select relkind from pg_class where oid = 'oura.heartrate'::regclass`);
    assert.equal(kinds[0]?.relkind, 'p', 'oura.heartrate is partitioned (the step after the migrations)');
    t.diagnostic(`${journal.entries.length} migrations applied in ${seconds(Date.now() - t0)}`);
    done.migrated = true;
  });

  test('api and worker start as uid 1000 and answer /readyz; the simulator starts from the same image', async (t) => {
    if (!done.migrated) return t.skip('needs the migrations');
    const env = {
      ...secrets,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: prefix,
      OURA_API_BASE_URL: url.sim,
      OURA_AUTHORIZE_URL: `${url.sim}/oauth/authorize`,
      PUBLIC_BASE_URL: url.api,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'debug',
    };
    const sim = compose.sim?.entrypoint;
    assert.ok(sim?.length, 'compose’s sim service has an entrypoint');
    const simName = await start(
      'sim',
      { SIM_PORT: String(ports.sim), SIM_HOST: '127.0.0.1', OURA_CLIENT_ID: secrets.OURA_CLIENT_ID, OURA_CLIENT_SECRET: secrets.OURA_CLIENT_SECRET },
      [],
      sim,
    );
    const api = await start('api', { ...env, PORT: String(ports.api), NODE_OPTIONS: serviceNodeOptions('api').join(' ') }, compose.api?.command ?? ['api']);
    const worker = await start(
      'worker',
      { ...env, METRICS_PORT: String(ports.worker), NODE_OPTIONS: serviceNodeOptions('worker').join(' ') },
      compose.worker?.command ?? ['worker'],
    );

    await withLog(simName, () => eventually('the simulator answers', async () => (await fetch(`${url.sim}/_sim/stats`)).ok, { timeoutMs: 60_000, intervalMs: 250 }));
    for (const [name, port] of [
      [api, ports.api],
      [worker, ports.worker],
    ] as const) {
      await withLog(name, () => eventually(`${name} /readyz → 200`, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, { timeoutMs: 60_000, intervalMs: 250 }));
      // The process the image started (PID 1), as the kernel sees it: real, effective, saved and filesystem uid.
      const status = await engine.exec(name, ['cat', '/proc/1/status']);
      assert.equal(status.code, 0, lastLine(status.stderr));
      const uids = /^Uid:\s+(.*)$/m.exec(status.stdout)?.[1]?.trim().split(/\s+/);
      assert.deepEqual(uids, ['1000', '1000', '1000', '1000'], `${name} runs as uid 1000`);
    }
    t.diagnostic('api and worker: uid 1000, /readyz 200');
    done.started = true;
  });

  test('every service’s healthcheck command exists in its image', async (t) => {
    if (!done.started) return t.skip('needs api and worker running');
    /** The port compose's healthcheck names, and the one this run gave the service instead. */
    const running: Record<string, { name: string; port: number; ours: number }> = {
      api: { name: containerName('api'), port: loadConfig(composeEnv('api')).PORT, ours: ports.api },
      worker: { name: containerName('worker'), port: loadConfig(composeEnv('worker')).METRICS_PORT!.first, ours: ports.worker },
    };
    const checked = Object.entries(compose).filter(([, s]) => s.healthcheck?.test?.length);
    assert.ok(checked.length >= 4, `compose has healthchecks (${checked.map(([n]) => n).join(', ')})`);
    for (const [service, spec] of checked) {
      await t.test(service, async (st: TestContext) => {
        const [kind, ...rest] = spec.healthcheck!.test!;
        assert.ok(kind === 'CMD' || kind === 'CMD-SHELL', `${service}: healthcheck test ${kind}`);
        const program = kind === 'CMD' ? rest[0]! : rest[0]!.trim().split(/\s+/)[0]!;
        const image = spec.build ? TAG : spec.image!;
        if (!(await engine.imageExists(image))) {
          try {
            await engine.pull(qualified(image));
          } catch (err) {
            return st.skip(`${image} cannot be had here (${(err as Error).message.split('\n')[0]}): ${program} not looked for`);
          }
        }
        const name = containerName(`healthcheck-${service}`);
        created.push(name);
        const which = await engine.runToEnd({ name, image, entrypoint: 'sh', args: ['-c', `command -v ${program}`], timeoutMs: 60_000 });
        assert.equal(which.code, 0, `${service}: ${program} is not in ${image}`);
        const svc = running[service];
        if (!svc) return st.diagnostic(`${program}: ${which.stdout.trim()} in ${image}`);
        // The healthcheck itself, in the running container, at the port this run gave the service.
        const argv = (kind === 'CMD' ? rest : ['/bin/sh', '-c', rest[0]!]).map((a) => a.replaceAll(`127.0.0.1:${svc.port}/`, `127.0.0.1:${svc.ours}/`));
        assert.ok(argv.join(' ').includes(`127.0.0.1:${svc.ours}/`), `${service}: the healthcheck names port ${svc.port}`);
        const r = await engine.exec(svc.name, argv);
        assert.equal(r.code, 0, `${service}: healthcheck exited ${r.code}: ${lastLine(r.stderr)}`);
        st.diagnostic(`${program}: ${which.stdout.trim()}; the healthcheck passes in the running container`);
      });
    }
  });

  test('a user connects through the simulator, run from the same image', async (t) => {
    if (!done.started) return t.skip('needs api, worker and simulator running');
    const userId = await withLog(containerName('api'), () => connectThroughOAuth(url.api));
    const { rows } = await pool!.query<{ status: string; access_token_enc: string }>('select status, access_token_enc from oura.users where id = $1', [userId]);
    assert.equal(rows[0]?.status, 'active');
    assert.ok(rows[0]?.access_token_enc.startsWith('v1.'), 'tokens stored encrypted');
    t.diagnostic(`user ${userId} connected`);
    done.connected = userId;
  });

  test('a signed webhook’s document lands', async (t) => {
    if (!done.connected) return t.skip('needs a connected user');
    const simJson = simJsonClient(url.sim);
    await withLog(containerName('api'), () => subscribe(url.sim, secrets, `${url.api}/webhooks/oura`, ['daily_sleep']));
    const t0 = Date.now();
    const doc = await simJson('POST', `/_sim/users/${done.connected}/documents/daily_sleep`, { notify: true });
    const deliveries = ((await simJson('GET', '/_sim/deliveries')) as Array<{ status: number | null; signature?: string; event: { object_id: string } }>).filter(
      (d) => d.event.object_id === doc.id,
    );
    assert.ok(deliveries.length > 0 && deliveries.every((d) => d.status === 200 && d.signature), `signed and answered 200: ${JSON.stringify(deliveries.map((d) => d.status))}`);
    const stored = await withLog(containerName('worker'), () =>
      eventually(
        'the document in oura.daily_sleep',
        async () => (await pool!.query<{ document: unknown }>('select document from oura.daily_sleep where id = $1', [doc.id])).rows[0],
        { timeoutMs: 30_000, intervalMs: 100 },
      ),
    );
    assert.ok(isDeepStrictEqual(stored.document, doc), 'stored as the simulator has it');
    t.diagnostic(`daily_sleep ${doc.id} landed ${seconds(Date.now() - t0)} after its webhook`);
  });

  test('SIGTERM: api and worker exit 0 within compose’s stop_grace_period', async (t) => {
    if (!done.started) return t.skip('needs api and worker running');
    for (const service of ['api', 'worker']) {
      const name = containerName(service);
      const graceS = composeDurationS(compose[service]?.stop_grace_period);
      const t0 = Date.now();
      // As compose stops it: the stop signal (SIGTERM), then SIGKILL once the grace period is over.
      await engine.stop(name, graceS);
      const ms = Date.now() - t0;
      const code = await engine.exitCode(name);
      assert.equal(code, 0, `${service} exited ${code} after SIGTERM${code === 137 ? ' (killed: the grace period ran out)' : ''}`);
      assert.ok(ms < graceS * 1000, `${service} took ${seconds(ms)}, grace ${graceS} s`);
      t.diagnostic(`${service}: exit 0 in ${seconds(ms)} (grace ${graceS} s)`);
    }
  });

  test('no secret reached the service’s logs', async (t) => {
    if (!done.started) return t.skip('needs the service to have run');
    const deliveries = (await simJsonClient(url.sim)('GET', '/_sim/deliveries')) as Array<{ signature?: string }>;
    writeFileSync(
      path.join(SERVICE_LOG_DIR, 'image.secrets.json'),
      JSON.stringify([...Object.values(secrets), ...deliveries.flatMap((d) => (d.signature ? [d.signature] : []))]),
    );
    for (const role of ['migrate', 'api', 'worker']) writeFileSync(path.join(SERVICE_LOG_DIR, `${role}.log`), await engine.logs(containerName(role)));
    const { problems, summary } = checkLogs(SERVICE_LOG_DIR, { wholeSuite: false });
    assert.deepEqual(problems, []);
    t.diagnostic(summary);
  });
});
