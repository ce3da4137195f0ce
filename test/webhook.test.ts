import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { webhookSignature } from '../src/crypto.js';
import { createDeps, type Deps } from '../src/deps.js';
import { buildApp } from '../src/server/app.js';
import { Worker } from 'bullmq';
import { createIntakeWorker } from '../src/workers/intake-worker.js';
import { EVENTS_QUEUE } from '../src/workers/queues.js';
import { eventsRetentionTask } from '../src/workers/events-retention.js';
import { eventually } from './helpers/util.js';
import { clearPrefix, createTestDatabase, getServices, TEST_SECRETS, testConfig, uniquePrefix, type TestDatabase } from './helpers/env.js';

function signed(body: string | Buffer, opts: { ts?: number; secret?: string; upper?: boolean } = {}) {
  const ts = String(opts.ts ?? Math.floor(Date.now() / 1000));
  let sig = webhookSignature(opts.secret ?? TEST_SECRETS.OURA_CLIENT_SECRET, ts, body);
  if (opts.upper) sig = sig.toUpperCase();
  return { 'content-type': 'application/json', 'x-oura-timestamp': ts, 'x-oura-signature': sig };
}

/** The user the test events name, stored as connected (tokens are placeholders: nothing is fetched here). */
function connectKnownUser(deps: Deps) {
  return deps.users.upsertConnected({
    id: 'user-known',
    personalInfo: {},
    accessTokenEnc: deps.cipher.encrypt('a'),
    refreshTokenEnc: deps.cipher.encrypt('r'),
    expiresAt: null,
    scopes: null,
  });
}

function event(over: Record<string, unknown> = {}) {
  return {
    event_type: 'create',
    data_type: 'daily_sleep',
    object_id: `obj-${Math.random().toString(36).slice(2)}`,
    event_time: new Date().toISOString(),
    user_id: 'user-known',
    ...over,
  };
}

describe('webhook endpoint', () => {
  let db: TestDatabase;
  let deps: Deps;
  let app: FastifyInstance;
  let redisUrl: string;
  const prefix = uniquePrefix('wh');

  before(async () => {
    db = await createTestDatabase('webhook');
    redisUrl = (await getServices()).redisUrl;
    deps = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: redisUrl }), { prefix });
    app = await buildApp(deps);
    await connectKnownUser(deps);
  });
  after(async () => {
    await app.close();
    await deps.close();
    await clearPrefix(redisUrl, prefix);
    await db.drop();
  });

  /** No worker runs here: the intake jobs the endpoint queued are all still waiting. */
  async function intake() {
    const jobs = await deps.intakeQueue.getJobs(['waiting'], 0, -1);
    return {
      jobs: jobs.length,
      eventIds: new Set(jobs.flatMap((j) => j.data.eventIds)),
      repeats: jobs.flatMap((j) => j.data.repeats ?? []),
    };
  }

  async function counts() {
    const { rows } = await deps.pool.query<{ n: string }>('select count(*) as n from oura.webhook_events');
    const queued = await intake();
    return { events: Number(rows[0]!.n), intakeJobs: queued.jobs, queuedEvents: queued.eventIds.size };
  }

  test('verification GET echoes the challenge only for our token', async () => {
    const ok = await app.inject({ url: `/webhooks/oura?verification_token=${TEST_SECRETS.OURA_WEBHOOK_VERIFICATION_TOKEN}&challenge=abc123` });
    assert.equal(ok.statusCode, 200);
    assert.deepEqual(ok.json(), { challenge: 'abc123' });
    const bad = await app.inject({ url: '/webhooks/oura?verification_token=nope&challenge=abc123' });
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.json().code, 'invalid_verification_token');
    const missing = await app.inject({ url: '/webhooks/oura?challenge=abc123' });
    assert.equal(missing.statusCode, 401);
  });

  test('a signed event is recorded before the 2xx and queued right after; a retry of it is a duplicate', async () => {
    const before = await counts();
    const body = JSON.stringify(event());
    const res = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body, { upper: true }) });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().status, 'accepted');
    const id = res.json().event_id as number;
    const row = await deps.events.get(id);
    assert.equal(row?.status, 'queued');
    await eventually('its id queued for the workers', async () => (await intake()).eventIds.has(id));

    const again = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().status, 'duplicate');
    assert.equal(again.json().event_id, id);
    await eventually('the repeat passed on', async () => (await intake()).repeats.length > 0);
    const after = await counts();
    assert.equal(after.events, before.events + 1);
    assert.equal(after.queuedEvents, before.queuedEvents + 1, 'one event queued');
    // The repeat is passed on so that a worker makes sure the event's job runs (it is left alone while it waits).
    assert.deepEqual((await intake()).repeats, [id]);
    assert.equal((await deps.events.get(id))?.deliveries, 2);
  });

  test('data types we do not fetch are acknowledged and recorded as ignored', async () => {
    for (const [over, outcome] of [
      [{ data_type: 'meal' }, 'unsupported_data_type'],
      [{ data_type: 'some_future_type' }, 'unsupported_data_type'],
    ] as const) {
      const before = await counts();
      const body = JSON.stringify(event(over));
      const res = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().status, 'ignored');
      const row = await deps.events.get(res.json().event_id);
      assert.equal(row?.status, 'ignored');
      assert.equal(row?.outcome, outcome);
      const after = await counts();
      assert.equal(after.intakeJobs, before.intakeJobs, 'nothing queued');
    }
  });

  test('deliveries arriving together share writes (group commit), each answered only once its own event is stored', async () => {
    // Count the statements the endpoint issues while 60 deliveries arrive at once, 10 of them repeats.
    const intakeBefore = await intake();
    const original = deps.events.recordDeliveries;
    let statements = 0;
    deps.events.recordDeliveries = async (batch) => {
      statements++;
      return original(batch);
    };
    try {
      const bodies = Array.from({ length: 50 }, () => JSON.stringify(event()));
      const all = [...bodies, ...bodies.slice(0, 10)];
      const responses = await Promise.all(
        all.map((b) => app.inject({ method: 'POST', url: '/webhooks/oura', payload: b, headers: signed(b) })),
      );
      assert.ok(responses.every((r) => r.statusCode === 200), 'every delivery acknowledged');
      const ids = responses.map((r) => r.json().event_id as number);
      assert.equal(new Set(ids).size, 50, 'repeats share their event');
      assert.equal(responses.filter((r) => r.json().status === 'accepted').length, 50);
      assert.equal(responses.filter((r) => r.json().status === 'duplicate').length, 10);
      for (const id of new Set(ids)) assert.equal((await deps.events.get(id))?.status, 'queued');
      const queued = await eventually('every event queued', async () => {
        const q = await intake();
        return ids.every((id) => q.eventIds.has(id)) && q;
      });
      assert.ok(statements < 10, `60 deliveries took ${statements} statements`);
      // At most one intake job (one Redis command) per statement: what committed meanwhile shares one.
      const jobs = queued.jobs - intakeBefore.jobs;
      assert.ok(jobs >= 1 && jobs <= statements, `${jobs} intake jobs for ${statements} statements`);
    } finally {
      deps.events.recordDeliveries = original;
    }
  });

  test('the retention task deletes served and ignored events older than WEBHOOK_EVENTS_RETENTION_DAYS, and nothing else', async () => {
    const days = deps.config.WEBHOOK_EVENTS_RETENTION_DAYS;
    const record = async (status: string, ageDays: number) => {
      const { rows } = await deps.pool.query<{ id: string }>(
        `insert into oura.webhook_events (dedupe_key, event_type, data_type, object_id, user_id, event_time, received_at, status)
         values (md5(random()::text), 'update', 'daily_sleep', 'x', $1, now(), now() - make_interval(days => $2), $3) returning id`,
        ['user-known', ageDays, status],
      );
      return Number(rows[0]!.id);
    };
    const old = { done: await record('done', days + 1), ignored: await record('ignored', days + 1), failed: await record('failed', days + 1), parked: await record('parked', days + 1), queued: await record('queued', days + 1) };
    const recent = await record('done', days - 1);
    await eventsRetentionTask.run(deps, deps.log);
    const left = async (id: number) => (await deps.events.get(id)) !== null;
    assert.equal(await left(old.done), false, 'an old served event is deleted');
    assert.equal(await left(old.ignored), false, 'an old ignored event is deleted');
    for (const id of [old.failed, old.parked, old.queued]) assert.ok(await left(id), `event ${id} still waits for work or an operator`);
    assert.ok(await left(recent), 'a served event within the retention stays');
  });

  test('bad signature, stale timestamp, malformed body and oversized body are refused and leave no trace', async () => {
    const before = await counts();
    const body = JSON.stringify(event());
    const cases: Array<{ name: string; payload: string | Buffer; headers: Record<string, string>; status: number; code: string }> = [
      { name: 'wrong secret', payload: body, headers: signed(body, { secret: 'other' }), status: 401, code: 'invalid_signature' },
      { name: 'tampered body', payload: body.replace('create', 'delete'), headers: signed(body), status: 401, code: 'invalid_signature' },
      { name: 'no signature', payload: body, headers: { 'content-type': 'application/json' }, status: 401, code: 'missing_signature' },
      { name: 'stale', payload: body, headers: signed(body, { ts: Math.floor(Date.now() / 1000) - 7201 }), status: 401, code: 'stale_timestamp' },
      { name: 'future', payload: body, headers: signed(body, { ts: Math.floor(Date.now() / 1000) + 600 }), status: 401, code: 'stale_timestamp' },
      { name: 'not json', payload: '{"event_type":', headers: signed('{"event_type":'), status: 400, code: 'invalid_body' },
      ...(() => {
        const b = JSON.stringify({ ...event(), event_type: 'explode' });
        return [{ name: 'bad event_type', payload: b, headers: signed(b), status: 400, code: 'invalid_body' }];
      })(),
      ...(() => {
        const b = JSON.stringify({ ...event(), object_id: undefined });
        return [{ name: 'missing object_id', payload: b, headers: signed(b), status: 400, code: 'invalid_body' }];
      })(),
      ...(() => {
        const b = JSON.stringify({ ...event(), pad: 'x'.repeat(70 * 1024) });
        return [{ name: 'oversized', payload: b, headers: signed(b), status: 413, code: 'payload_too_large' }];
      })(),
    ];
    for (const c of cases) {
      const res = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: c.payload, headers: c.headers });
      assert.equal(res.statusCode, c.status, `${c.name}: ${res.body}`);
      assert.equal(res.headers['content-type']?.toString().startsWith('application/json'), true, c.name);
      assert.equal(res.json().code, c.code, c.name);
      assert.equal(typeof res.json().message, 'string', c.name);
    }
    assert.deepEqual(await counts(), before);
  });
});

describe('intake: from accepted batches to per-event jobs', () => {
  test('each accepted event gets exactly one events-queue job, even when a batch runs twice; a repeat of a finished event runs again', async () => {
    const db = await createTestDatabase('webhook_intake');
    const { redisUrl } = await getServices();
    const prefix = uniquePrefix('intake');
    const deps = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: redisUrl }), { prefix });
    const app = await buildApp(deps);
    const worker = createIntakeWorker(deps, deps.workerConnection());
    void worker.run();
    try {
      await connectKnownUser(deps);
      const bodies = Array.from({ length: 20 }, () => JSON.stringify(event()));
      const responses = await Promise.all(
        bodies.map((b) => app.inject({ method: 'POST', url: '/webhooks/oura', payload: b, headers: signed(b) })),
      );
      const ids = responses.map((r) => r.json().event_id as number);
      const jobIds = async () => (await deps.queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'failed'], 0, -1)).map((j) => j.id);
      await eventually('a job per event', async () => (await jobIds()).length === ids.length);
      assert.deepEqual(new Set(await jobIds()), new Set(ids.map((id) => `evt-${id}`)));

      // The same batch again (as after a worker crash before its job completed): nothing is queued twice.
      const again = await deps.intakeQueue.add('deliveries', { eventIds: ids, repeats: [] });
      await eventually('the repeated batch done', async () => (await again.getState()) === 'completed');
      assert.equal((await jobIds()).length, ids.length);

      // Oura delivers a finished event again: its completed job is replaced, so the event runs once more.
      const stub = new Worker(EVENTS_QUEUE, async () => 'stored', { connection: deps.workerConnection(), prefix });
      await eventually('every event job completed', async () => (await deps.queue.getJobCounts('completed')).completed === ids.length);
      await stub.close();
      await deps.pool.query(`update oura.webhook_events set status = 'done', processed_at = now() where id = $1`, [ids[0]]);
      const redelivered = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: bodies[0]!, headers: signed(bodies[0]!) });
      assert.equal(redelivered.json().status, 'duplicate');
      assert.equal((await deps.events.get(ids[0]!))?.status, 'queued', 'the finished event is queued again');
      await eventually('its job waiting again', async () => (await deps.queue.getJob(`evt-${ids[0]}`))?.getState().then((s) => s === 'waiting'));

      // Delivered again while its job runs (that run may have read the document before
      // the change the repeat announces): a follow-up job is queued behind it.
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const busy = new Worker(EVENTS_QUEUE, async () => held, { connection: deps.workerConnection(), prefix });
      try {
        await eventually('its job running', async () => (await deps.queue.getJob(`evt-${ids[0]}`))?.getState().then((s) => s === 'active'));
        const during = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: bodies[0]!, headers: signed(bodies[0]!) });
        assert.equal(during.json().status, 'duplicate');
        const followUp = await eventually('a follow-up job', async () =>
          (await deps.queue.getJobs(['delayed', 'waiting'], 0, -1)).find((j) => j.id?.startsWith(`evt-${ids[0]}-again-`)),
        );
        assert.deepEqual(followUp.data, { eventId: ids[0] });
      } finally {
        release();
        await busy.close();
      }
    } finally {
      await worker.close();
      await app.close();
      await deps.close();
      await clearPrefix(redisUrl, prefix);
      await db.drop();
    }
  });
});

describe('webhook endpoint with a store down', () => {
  test('Redis unreachable: deliveries are still acknowledged once recorded, left queued for the sweeper, and shutdown does not wait on Redis', async () => {
    const db = await createTestDatabase('webhook_redis_down');
    const deps = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: 'redis://127.0.0.1:1' }), { prefix: uniquePrefix('down') });
    const app = await buildApp(deps);
    let closed = false;
    try {
      await connectKnownUser(deps);
      const post = (body: string) => app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
      // The first is being queued (Redis never answers) when the second commits.
      const first = await post(JSON.stringify(event()));
      const second = await post(JSON.stringify(event()));
      for (const res of [first, second]) {
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.json().status, 'accepted');
        // Durable in Postgres and still `queued`: the sweeper queues it once Redis answers.
        assert.equal((await deps.events.get(res.json().event_id))?.status, 'queued');
      }
      assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);

      // Closing waits one queueing timeout (3 s) at most, not one per pending job.
      const started = Date.now();
      await app.close();
      closed = true;
      assert.ok(Date.now() - started < 4500, `closed in ${Date.now() - started} ms`);
      assert.ok(((await deps.metrics.unqueued.get()).values[0]?.value ?? 0) >= 1, 'counted as not queued');
    } finally {
      if (!closed) await app.close();
      await deps.close();
      await db.drop();
    }
  });

  test('Postgres unreachable → 503', async () => {
    const { redisUrl } = await getServices();
    const prefix = uniquePrefix('pgdown');
    const deps = createDeps(testConfig({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none', REDIS_URL: redisUrl }), { prefix });
    const app = await buildApp(deps);
    try {
      const body = JSON.stringify(event());
      const res = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
      assert.equal(res.statusCode, 503, res.body);
      assert.equal(res.json().code, 'database_unavailable');
      assert.equal((await deps.intakeQueue.getJobCounts('waiting')).waiting, 0);
    } finally {
      await app.close();
      await deps.close();
      await clearPrefix(redisUrl, prefix);
    }
  });
});
