import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import { createDeps } from '../src/deps.js';
import { buildApp } from '../src/server/app.js';
import { createWorkerStatusServer } from '../src/server/worker-status.js';
import { getServices, testConfig } from './helpers/env.js';
import { eventually, freePort, startStack, type Stack } from './helpers/stack.js';

const FAMILIES = [
  'oura_ingest_webhook_deliveries_total',
  'oura_ingest_ingest_latency_seconds',
  'oura_ingest_queue_jobs',
  'oura_ingest_queue_oldest_waiting_seconds',
  'oura_ingest_jobs_total',
  'oura_ingest_job_duration_seconds',
  'oura_ingest_oura_requests_total',
  'oura_ingest_limiter_wait_seconds',
  'oura_ingest_oura_429_total',
  'oura_ingest_token_refreshes_total',
  'oura_ingest_backfill_windows',
  'oura_ingest_backfills_running',
  'oura_ingest_events_per_request',
  'oura_ingest_seconds_since_last_webhook',
  'oura_ingest_webhook_events_unqueued_total',
  'oura_ingest_users',
  'oura_ingest_ready',
  'oura_ingest_freshness_target_seconds',
  'oura_ingest_budget_requests_per_second',
  'oura_ingest_partner_webhook_pending',
  'oura_ingest_partner_webhook_oldest_pending_seconds',
  'oura_ingest_partner_webhook_dead',
];

/** Every oura_ingest_… name the alert rules and the Grafana dashboard query. */
function namesInDeployPack(): Map<string, string> {
  const names = new Map<string, string>();
  for (const file of ['deploy/prometheus/alerts.yml', 'deploy/grafana/oura-ingest.json']) {
    for (const m of readFileSync(path.join(repoRoot, file), 'utf8').matchAll(/\boura_ingest_[a-z0-9_]+/g)) names.set(m[0], file);
  }
  return names;
}

/** `name{labels} value` samples of one family. */
function samples(text: string, name: string): Array<{ labels: string; value: number }> {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .map((l) => {
      const m = /^(\S+?)(\{.*\})?\s+(\S+)$/.exec(l)!;
      return { labels: m[2] ?? '', value: Number(m[3]) };
    });
}

describe('observability', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'metrics', env: { BACKFILL_DAYS: '2' } });
    await stack.subscribeAll(['daily_sleep', 'workout']);
  });
  after(async () => {
    await stack?.close();
  });

  test('/metrics exposes every family after a run, with the run in it', async () => {
    const userId = await stack.connectUser();
    await stack.simJson('POST', '/_sim/faults', { status: 429, count: 1, userId, tier: 'token', retryAfterS: 1 });
    const docs = [];
    for (const type of ['daily_sleep', 'workout', 'daily_sleep']) docs.push(await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true }));
    await stack.simJson('POST', `/_sim/users/${userId}/expire-tokens`);
    docs.push(await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, { notify: true }));
    // A refused delivery, too.
    await fetch(`${stack.apiUrl}/webhooks/oura`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await eventually('documents stored', async () => {
      const { rows } = await stack.deps.pool.query<{ n: number }>(`select count(*)::int as n from oura.webhook_events where status = 'done'`);
      return rows[0]!.n === docs.length;
    });
    await eventually('backfill done', async () => {
      const { rows } = await stack.deps.pool.query<{ n: number }>(`select count(*)::int as n from oura.backfill_progress where status <> 'done'`);
      return rows[0]!.n === 0;
    });

    const res = await fetch(`${stack.apiUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    if (process.env.DUMP_METRICS) console.log(text);
    for (const f of FAMILIES) assert.match(text, new RegExp(`^# TYPE ${f} `, 'm'), `family ${f}`);

    const deliveries = samples(text, 'oura_ingest_webhook_deliveries_total');
    assert.ok(deliveries.some((s) => s.labels.includes('outcome="accepted"') && s.value >= docs.length));
    assert.ok(deliveries.some((s) => s.labels.includes('outcome="refused_signature"') && s.value >= 1));
    assert.ok(samples(text, 'oura_ingest_ingest_latency_seconds_count')[0]!.value >= docs.length);
    assert.ok(samples(text, 'oura_ingest_oura_429_total').some((s) => s.labels.includes('tier="token"') && s.value === 1));
    assert.ok(samples(text, 'oura_ingest_token_refreshes_total').some((s) => s.labels.includes('result="ok"') && s.value >= 1));
    assert.ok(samples(text, 'oura_ingest_oura_requests_total').some((s) => s.labels.includes('status="200"') && s.value > 0));
    assert.ok(samples(text, 'oura_ingest_jobs_total').some((s) => s.labels.includes('queue="events"') && s.labels.includes('outcome="completed"')));
    assert.ok(samples(text, 'oura_ingest_queue_jobs').some((s) => s.labels.includes('queue="events"')));
    const windows = samples(text, 'oura_ingest_backfill_windows');
    const done = windows.find((s) => s.labels.includes('done'))!.value;
    assert.ok(done > 0 && done === windows.find((s) => s.labels.includes('total'))!.value);
    const perRequest = samples(text, 'oura_ingest_events_per_request')[0]!.value;
    assert.ok(perRequest > 0, `events per request ${perRequest}`);
    const silence = samples(text, 'oura_ingest_seconds_since_last_webhook')[0]!.value;
    assert.ok(silence >= 0 && silence < 60, `seconds since last webhook ${silence}`);
    const users = samples(text, 'oura_ingest_users');
    assert.ok(users.some((s) => s.labels === '{status="active"}' && s.value >= 1), 'users by status');
    assert.ok(users.some((s) => s.labels === '{status="reauth_required"}'), 'every status, 0 when none');
    assert.deepEqual(samples(text, 'oura_ingest_ready').map((s) => [s.labels, s.value]).sort(), [
      ['{check="migrations"}', 1],
      ['{check="postgres"}', 1],
      ['{check="redis"}', 1],
    ]);
    assert.equal(samples(text, 'oura_ingest_freshness_target_seconds')[0]!.value, stack.deps.config.FRESHNESS_TARGET_S);
    const limit = stack.deps.config.OURA_APP_RATE_LIMIT;
    assert.equal(samples(text, 'oura_ingest_budget_requests_per_second')[0]!.value, limit.limit / limit.windowS);

    // Every metric the alert rules and the dashboard query is one this service exports.
    const exported = new Set<string>();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      exported.add(m[1]!);
      if (m[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(`${m[1]}${suffix}`);
    }
    const used = namesInDeployPack();
    assert.ok(used.size >= 15, `the pack queries ${used.size} metrics`);
    for (const [name, file] of used) assert.ok(exported.has(name), `${file} queries ${name}, which /metrics does not export`);

    // Nothing in the metrics names a user or a document.
    assert.equal(text.includes(userId), false);
    for (const d of docs) assert.equal(text.includes(d.id), false);
  });

  test('/healthz answers while the process is up; /readyz reports Postgres, Redis and migrations', async () => {
    assert.equal((await fetch(`${stack.apiUrl}/healthz`)).status, 200);
    const ready = await fetch(`${stack.apiUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { status: 'ready', checks: { postgres: true, redis: true, migrations: true } });
  });

  test("a worker process's status port serves /metrics, /healthz and /readyz (503 when Redis is unreachable)", async () => {
    const serve = async (deps: Parameters<typeof createWorkerStatusServer>[0], check: (url: string) => Promise<void>) => {
      const port = await freePort();
      const server = createWorkerStatusServer(deps).listen(port, '127.0.0.1');
      try {
        await check(`http://127.0.0.1:${port}`);
      } finally {
        await new Promise((r) => server.close(r));
      }
    };
    await serve(stack.deps, async (url) => {
      const metrics = await fetch(`${url}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(await metrics.text(), /^# TYPE oura_ingest_jobs_total counter$/m);
      assert.deepEqual(await (await fetch(`${url}/healthz`)).json(), { status: 'ok' });
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: 'ready', checks: { postgres: true, redis: true, migrations: true } });
      const missing = await fetch(`${url}/nope?x=1`);
      assert.equal(missing.status, 404);
      assert.deepEqual(await missing.json(), { code: 'not_found', message: 'no route GET /nope' });
    });
    const down = createDeps(testConfig({ DATABASE_URL: stack.db.url, REDIS_URL: 'redis://127.0.0.1:1' }), { prefix: 'worker-status-down' });
    try {
      await serve(down, async (url) => {
        const ready = await fetch(`${url}/readyz`);
        assert.equal(ready.status, 503);
        assert.deepEqual(await ready.json(), { status: 'not_ready', checks: { postgres: true, redis: false, migrations: true } });
        assert.equal((await fetch(`${url}/healthz`)).status, 200, 'healthz only says the process is up');
      });
    } finally {
      await down.close();
    }
  });

  test('/readyz answers 503 when Postgres or Redis is unreachable', async () => {
    const { redisUrl } = await getServices();
    for (const [env, down] of [
      [{ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', REDIS_URL: redisUrl }, 'postgres'],
      [{ DATABASE_URL: stack.db.url, REDIS_URL: 'redis://127.0.0.1:1' }, 'redis'],
    ] as const) {
      const deps = createDeps(testConfig(env), { prefix: `readyz-${down}` });
      const app = await buildApp(deps);
      try {
        const res = await app.inject({ url: '/readyz' });
        assert.equal(res.statusCode, 503, down);
        assert.equal(res.json().status, 'not_ready');
        assert.equal(res.json().checks[down], false);
        assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'healthz only says the process is up');
      } finally {
        await app.close();
        await deps.close();
      }
    }
  });
});
