import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import { Config, loadConfig } from '../src/config.js';
import { composeEnv, composeServices, dockerfile as readDockerfile, imageNodeOptions } from '../dev/deployment.js';

const services = composeServices();

/** Variables the service cannot start without (no default in the schema). */
const REQUIRED = Object.entries(Config.in.shape)
  .filter(([, schema]) => !schema.safeParse(undefined).success)
  .map(([k]) => k);

test('compose gives api and worker every required variable, valid as the service parses it', () => {
  assert.ok(REQUIRED.includes('DATABASE_URL') && REQUIRED.includes('TOKEN_ENCRYPTION_KEY'));
  for (const name of ['api', 'worker']) {
    const env = composeEnv(name);
    for (const key of REQUIRED) assert.ok(env[key], `${name} lacks ${key}`);
    const config = loadConfig(env);
    assert.equal(config.OURA_API_BASE_URL, 'http://sim:8090', `${name} talks to the simulator by default`);
  }
  assert.deepEqual(services.api?.command, ['api']);
  assert.deepEqual(services.worker?.command, ['worker']);
});

test("the NODE_OPTIONS of api and worker in compose keep the image's (setting it replaces the Dockerfile's) and cap the heap", () => {
  const image = imageNodeOptions();
  assert.ok(image.length > 0, 'the Dockerfile sets NODE_OPTIONS');
  for (const name of ['api', 'worker']) {
    const flags = (composeEnv(name).NODE_OPTIONS ?? '').split(/\s+/);
    for (const flag of image) assert.ok(flags.includes(flag), `${name} NODE_OPTIONS lacks ${flag}`);
    assert.ok(flags.some((f) => /^--max-old-space-size=\d+$/.test(f)), `${name} NODE_OPTIONS caps the heap`);
  }
});

test('api and worker have a healthcheck on /readyz at the port they serve it on, and restart', () => {
  const ports = { api: loadConfig(composeEnv('api')).PORT, worker: loadConfig(composeEnv('worker')).METRICS_PORT?.first };
  for (const [name, port] of Object.entries(ports)) {
    const check = services[name]?.healthcheck?.test?.join(' ') ?? '';
    assert.ok(check.includes(`http://127.0.0.1:${port}/readyz`), `${name} healthcheck reads /readyz on ${port}: ${check}`);
    assert.equal(services[name]?.restart, 'unless-stopped', name);
  }
});

test('values set in the environment reach the services', () => {
  const env = composeEnv('api', { OURA_API_BASE_URL: 'https://api.ouraring.com', OURA_CLIENT_ID: 'real-id' });
  const config = loadConfig(env);
  assert.equal(config.OURA_API_BASE_URL, 'https://api.ouraring.com');
  assert.equal(config.OURA_CLIENT_ID, 'real-id');
  // OURA_TOKEN_URL is passed on only when set: unset, the service derives it from the API's URL.
  assert.equal(config.OURA_TOKEN_URL, 'https://api.ouraring.com/oauth/token');
  const portal = loadConfig(composeEnv('worker', { OURA_TOKEN_URL: 'https://portal.example/oauth/token' }));
  assert.equal(portal.OURA_TOKEN_URL, 'https://portal.example/oauth/token');
  // The outbound webhooks: off unless set where compose runs, then on for the worker.
  assert.equal(config.PARTNER_WEBHOOK_URL, undefined);
  const secret = `whsec_${Buffer.alloc(32, 1).toString('base64')}`;
  const partner = loadConfig(composeEnv('worker', { PARTNER_WEBHOOK_URL: 'https://partner.example/hook', PARTNER_WEBHOOK_SECRET: secret }));
  assert.equal(partner.PARTNER_WEBHOOK_URL, 'https://partner.example/hook');
  assert.equal(partner.PARTNER_WEBHOOK_SECRET, secret);
});

test('the simulator runs under the sim profile with the same client credentials', () => {
  const sim = services.sim!;
  assert.deepEqual(sim.profiles, ['sim']);
  assert.equal(composeEnv('sim').OURA_CLIENT_SECRET, composeEnv('api').OURA_CLIENT_SECRET);
});

test('the image is multi-stage, production dependencies only, non-root', () => {
  const dockerfile = readDockerfile();
  assert.ok((dockerfile.match(/^FROM /gm) ?? []).length >= 2);
  assert.match(dockerfile, /npm ci --omit=dev/);
  assert.match(dockerfile, /^USER node$/m);
});

/** Every .ts file under a directory. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

test('what the image runs imports only production dependencies (the image installs no others)', () => {
  const root = repoRoot;
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const missing = new Set<string>();
  let seen = 0;
  for (const file of sources(path.join(root, 'src'))) {
    const text = readFileSync(file, 'utf8');
    // Runtime imports: `import … from`, `export … from`, `import(…)`, and pino transport targets (loaded by name).
    const specifiers = [
      ...[...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^;]*?\sfrom\s+'([^']+)'/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/^\s*import\s+'([^']+)'/gm)].map((m) => m[1]!),
      ...[...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g)].map((m) => m[1]!),
      ...[...text.matchAll(/\btarget:\s*'([a-z@][^']*)'/g)].map((m) => m[1]!),
    ];
    for (const spec of specifiers) {
      if (spec.startsWith('.') || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      seen++;
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      if (!(name in pkg.dependencies)) missing.add(`${name} (${path.relative(root, file)})`);
    }
  }
  assert.ok(seen > 20, `found the imports (${seen})`);
  assert.deepEqual([...missing], [], 'imported by src/ but not a production dependency');
});
