import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { webhookSignature } from '../src/crypto.js';
import { createDeps, type Deps } from '../src/deps.js';
import { buildApp } from '../src/server/app.js';
import { parseEventTime } from '../src/server/webhook.js';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { admitAndQueue, createIntakeWorker, intakeDeps } from '../src/workers/intake-worker.js';
import { EVENTS_QUEUE } from '../src/queues/index.js';
import { eventsRetentionTask } from '../src/workers/events-retention.js';
import { sweepOnce } from '../src/workers/sweeper.js';
import { eventually } from '../dev/util.js';
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
    return { jobs: jobs.length, deliveryIds: new Set(jobs.flatMap((j) => ('deliveryIds' in j.data ? j.data.deliveryIds : []))) };
  }

  async function counts() {
    const { rows } = await deps.pool.query<{ events: number; inbox: number }>(
      'select (select count(*)::int from oura.webhook_events) as events, (select count(*)::int from oura.webhook_inbox) as inbox',
    );
    const queued = await intake();
    return { ...rows[0]!, intakeJobs: queued.jobs, queuedDeliveries: queued.deliveryIds.size };
  }

  async function inboxRow(id: number) {
    const { rows } = await deps.pool.query('select * from oura.webhook_inbox where id = $1', [id]);
    return rows[0] ?? null;
  }

  /** What the intake worker does with an intake job, run here directly. */
  const admit = (ids: number[]) => admitAndQueue(intakeDeps(deps), ids);

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

  test('a signed delivery is recorded before the 2xx and queued right after; admitted, a retry of it is a duplicate of one event', async () => {
    const before = await counts();
    const body = JSON.stringify(event({ object_id: `obj-ü-${Math.random()}`, event_time: '2026-11-26T12:00:01.5+02:00' }));
    const res = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body, { upper: true }) });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().status, 'accepted');
    const id = res.json().delivery_id as number;
    assert.equal((await inboxRow(id))?.supported, true, 'in the inbox when answered');
    await eventually('its id queued for the workers', async () => (await intake()).deliveryIds.has(id));

    const again = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
    assert.equal(again.statusCode, 200);
    assert.equal(again.json().status, 'accepted');
    const againId = again.json().delivery_id as number;
    await eventually('the retry queued too', async () => (await intake()).deliveryIds.has(againId));
    const mid = await counts();
    assert.equal(mid.inbox, before.inbox + 2);
    assert.equal(mid.events, before.events);

    const duplicatesBefore = await duplicateCount();
    const admitted = await admit([id, againId]);
    assert.deepEqual({ deliveries: admitted.deliveries, queued: admitted.queued, duplicates: admitted.duplicates }, { deliveries: 2, queued: 1, duplicates: 1 });
    const row = await deps.events.get(id);
    assert.equal(row?.status, 'queued', 'one event, which keeps the first delivery\'s id');
    assert.equal(row?.deliveries, 2);
    // The dedupe key as the api wrote it before the inbox, so retries across an upgrade still collapse.
    const sent = JSON.parse(body) as Record<string, string>;
    const fields = [sent.event_type, sent.data_type, sent.object_id, new Date(sent.event_time!).toISOString(), sent.user_id];
    assert.equal(row?.dedupe_key, createHash('sha256').update(fields.join('\u0000')).digest('hex'));
    assert.equal((await deps.queue.getJob(`evt-${id}`))?.data.eventId, id, 'its job queued');
    const after = await counts();
    assert.deepEqual([after.events, after.inbox], [before.events + 1, before.inbox], 'moved out of the inbox');
    assert.equal((await duplicateCount()) - duplicatesBefore, 1, 'counted as a duplicate delivery');
    // Admitting the same deliveries again (a retried intake job) changes nothing.
    assert.equal((await admit([id, againId])).deliveries, 0);
    assert.equal((await deps.events.get(id))?.deliveries, 2);
  });

  async function duplicateCount() {
    const metric = await deps.metrics.deliveries.get();
    return metric.values.find((v) => v.labels.outcome === 'duplicate')?.value ?? 0;
  }

  test('data types we do not fetch are acknowledged and recorded as ignored', async () => {
    for (const [over, outcome] of [
      [{ data_type: 'meal' }, 'unsupported_data_type'],
      [{ data_type: 'some_future_type' }, 'unsupported_data_type'],
    ] as const) {
      const body = JSON.stringify(event(over));
      const res = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().status, 'ignored');
      const id = res.json().delivery_id as number;
      assert.equal((await inboxRow(id))?.supported, false);
      await eventually('queued for admission', async () => (await intake()).deliveryIds.has(id));
      const waitingJobs = async () => {
        const c = await deps.queue.getJobCounts('waiting', 'prioritized');
        return c.waiting! + c.prioritized!;
      };
      const jobsBefore = await waitingJobs();
      const admitted = await admit([id]);
      assert.deepEqual([admitted.ignored, admitted.queued], [1, 0]);
      const row = await deps.events.get(id);
      assert.equal(row?.status, 'ignored');
      assert.equal(row?.outcome, outcome);
      assert.equal(await waitingJobs(), jobsBefore, 'nothing queued for the workers');
    }
  });

  test('deliveries arriving together share writes (group commit), each answered only once its own delivery is stored', async () => {
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
      assert.ok(responses.every((r) => r.statusCode === 200 && r.json().status === 'accepted'), 'every delivery acknowledged');
      const ids = [...new Set(responses.map((r) => r.json().delivery_id as number))];
      for (const id of ids) assert.ok(await inboxRow(id), `delivery ${id} in the inbox`);
      const queued = await eventually('every delivery queued', async () => {
        const q = await intake();
        return ids.every((id) => q.deliveryIds.has(id)) && q;
      });
      assert.ok(statements < 10, `60 deliveries took ${statements} statements`);
      // At most one intake job (one Redis command) per statement: what committed meanwhile shares one.
      const jobs = queued.jobs - intakeBefore.jobs;
      assert.ok(jobs >= 1 && jobs <= statements, `${jobs} intake jobs for ${statements} statements`);
      // Admitted, the 60 deliveries are 50 events, 10 of the deliveries duplicates.
      const admitted = await admit(ids);
      assert.deepEqual({ deliveries: admitted.deliveries, queued: admitted.queued, duplicates: admitted.duplicates }, { deliveries: 60, queued: 50, duplicates: 10 });
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
    const cases: Array<{ name: string; payload: string | Buffer; headers: Record<string, string>; status: number; code: string; message?: RegExp }> = [
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
      // Times Postgres could not store would fail the whole group commit (a 503 for every delivery in it).
      ...['yesterday', 'November 26, 2026 12:00', '0000-12-31T23:00:00Z', '0001-01-01T00:30:00+01:00', '+010000-01-01T00:00:00Z', '2026-11-26T12:00:00+25:00'].map((t) => {
        const b = JSON.stringify({ ...event(), event_time: t });
        return { name: `event_time ${t}`, payload: b, headers: signed(b), status: 400, code: 'invalid_body', message: /^event_time: must be an ISO 8601 date-time/ };
      }),
      ...(() => {
        const b = JSON.stringify({ ...event(), object_id: 'obj\u0000x' });
        return [{ name: 'NUL in object_id', payload: b, headers: signed(b), status: 400, code: 'invalid_body', message: /^object_id: must not contain NUL/ }];
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
      if (c.message) assert.match(res.json().message, c.message, c.name);
    }
    assert.deepEqual(await counts(), before);
  });
});

test('event_time: ISO 8601 with or without a zone; without one it is UTC, whatever the host time zone', () => {
  const tz = process.env.TZ;
  try {
    for (const zone of ['UTC', 'America/New_York', 'Asia/Kolkata']) {
      process.env.TZ = zone;
      assert.equal(parseEventTime('2026-11-26T12:00:00'), Date.UTC(2026, 10, 26, 12), zone);
      assert.equal(parseEventTime('2026-11-26T12:00'), Date.UTC(2026, 10, 26, 12), zone);
      assert.equal(parseEventTime('2026-11-26T12:00:00+00:00'), Date.UTC(2026, 10, 26, 12), zone);
      assert.equal(parseEventTime('2026-11-26T14:00:00.250+02:00'), Date.UTC(2026, 10, 26, 12, 0, 0, 250), zone);
      assert.equal(parseEventTime('2026-11-26T17:30:00+0530'), Date.UTC(2026, 10, 26, 12), zone);
      assert.equal(parseEventTime('2026-11-26T12:00:00.123456Z'), Date.UTC(2026, 10, 26, 12, 0, 0, 123), zone);
    }
  } finally {
    if (tz === undefined) delete process.env.TZ;
    else process.env.TZ = tz;
  }
  assert.equal(parseEventTime('0001-01-01T00:00:00Z'), Date.parse('0001-01-01T00:00:00Z'));
  assert.equal(parseEventTime('9999-12-31T23:59:59.999Z'), Date.parse('9999-12-31T23:59:59.999Z'));
  for (const bad of ['', '2026-11-26', '2026-11-26 12:00:00Z', '2026-11-26T12:00:00z', '0000-06-01T00:00:00Z']) assert.equal(parseEventTime(bad), null, bad);
});

/** A database and Redis prefix of its own, with the api on them and the test user connected, for `body`; removed afterwards. */
async function withApi(label: string, body: (s: { deps: Deps; app: FastifyInstance; prefix: string }) => Promise<void>) {
  const db = await createTestDatabase(`webhook_${label}`);
  const { redisUrl } = await getServices();
  const prefix = uniquePrefix(label);
  const deps = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: redisUrl }), { prefix });
  const app = await buildApp(deps);
  try {
    await connectKnownUser(deps);
    await body({ deps, app, prefix });
  } finally {
    await app.close();
    await deps.close();
    await clearPrefix(redisUrl, prefix);
    await db.drop();
  }
}

describe('intake: from accepted deliveries to per-event jobs', () => {
  test('an intake job retried after its deliveries were admitted but not queued (Redis failed between) queues them', () =>
    withApi('intake-retry', async ({ deps, app, prefix }) => {
      // A queue whose Redis refuses connections: every command fails at once.
      const downRedis = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
      downRedis.on('error', () => {});
      const downQueue = new Queue(EVENTS_QUEUE, { connection: downRedis, prefix });
      downQueue.on('error', () => {});
      try {
        const bodies = Array.from({ length: 3 }, () => JSON.stringify(event()));
        const ids: number[] = [];
        for (const b of bodies) ids.push((await app.inject({ method: 'POST', url: '/webhooks/oura', payload: b, headers: signed(b) })).json().delivery_id);

        await assert.rejects(admitAndQueue({ ...intakeDeps(deps), queue: downQueue as unknown as Deps['queue'] }, ids));
        for (const id of ids) assert.equal((await deps.events.get(id))?.status, 'queued', 'admitted: out of the inbox, an event');
        for (const id of ids) assert.equal(await deps.queue.getJob(`evt-${id}`), undefined, 'but not queued');

        const retried = await admitAndQueue(intakeDeps(deps), ids);
        assert.equal(retried.deliveries, 0, 'nothing left in the inbox to admit');
        assert.equal(retried.requeued, ids.length);
        for (const id of ids) assert.deepEqual((await deps.queue.getJob(`evt-${id}`))?.data, { eventId: id }, `event ${id} queued by the retry`);
        assert.equal((await admitAndQueue(intakeDeps(deps), ids)).requeued, 0, 'a further retry queues nothing twice');
      } finally {
        await downQueue.close().catch(() => {});
        downRedis.disconnect();
      }
    }));

  test('each accepted event gets exactly one events-queue job, even when a batch runs twice; a repeat of a finished event runs again', () =>
    withApi('intake', async ({ deps, app, prefix }) => {
      const worker = createIntakeWorker(deps, deps.workerConnection());
      void worker.run();
      try {
        const bodies = Array.from({ length: 20 }, () => JSON.stringify(event()));
        const responses = await Promise.all(
          bodies.map((b) => app.inject({ method: 'POST', url: '/webhooks/oura', payload: b, headers: signed(b) })),
        );
        // A new event keeps its delivery's id.
        const ids = responses.map((r) => r.json().delivery_id as number);
        const jobIds = async () => (await deps.queue.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'], 0, -1)).map((j) => j.id);
        await eventually('a job per event', async () => (await jobIds()).length === ids.length);
        assert.deepEqual(new Set(await jobIds()), new Set(ids.map((id) => `evt-${id}`)));
        for (const id of ids) assert.equal((await deps.events.get(id))?.status, 'queued');

        // The same batch again (as after a worker crash before its job completed): nothing is queued twice.
        const again = await deps.intakeQueue.add('deliveries', { deliveryIds: ids });
        await eventually('the repeated batch done', async () => (await again.getState()) === 'completed');
        assert.equal((await jobIds()).length, ids.length);

        // Oura delivers a finished event again: its completed job is replaced, so the event runs once more.
        const stub = new Worker(EVENTS_QUEUE, async () => 'stored', { connection: deps.workerConnection(), prefix });
        await eventually('every event job completed', async () => (await deps.queue.getJobCounts('completed')).completed === ids.length);
        await stub.close();
        await deps.pool.query(`update oura.webhook_events set status = 'done', processed_at = now() where id = $1`, [ids[0]]);
        const redelivered = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: bodies[0]!, headers: signed(bodies[0]!) });
        assert.equal(redelivered.json().status, 'accepted');
        await eventually('the finished event queued again', async () => (await deps.events.get(ids[0]!))?.status === 'queued');
        assert.equal((await deps.events.get(ids[0]!))?.deliveries, 2);
        // Waiting again, in its place by age (a prioritized job: see eventPriority).
        await eventually('its job waiting again', async () => (await deps.queue.getJob(`evt-${ids[0]}`))?.getState().then((s) => s === 'prioritized'));

        // Delivered again while its job runs (that run may have read the document before
        // the change the repeat announces): a follow-up job is queued behind it.
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        const busy = new Worker(EVENTS_QUEUE, async () => held, { connection: deps.workerConnection(), prefix });
        try {
          await eventually('its job running', async () => (await deps.queue.getJob(`evt-${ids[0]}`))?.getState().then((s) => s === 'active'));
          const during = await app.inject({ method: 'POST', url: '/webhooks/oura', payload: bodies[0]!, headers: signed(bodies[0]!) });
          assert.equal(during.json().status, 'accepted');
          const followUp = await eventually('a follow-up job', async () =>
            (await deps.queue.getJobs(['delayed', 'waiting', 'prioritized'], 0, -1)).find((j) => j.id?.startsWith(`evt-${ids[0]}-again-`)),
          );
          assert.deepEqual(followUp.data, { eventId: ids[0] });
        } finally {
          release();
          await busy.close();
        }
      } finally {
        await worker.close();
      }
    }));
});

describe('webhook endpoint with a store down', () => {
  test('Redis unreachable: deliveries are still acknowledged once recorded, left in the inbox for the sweeper, and shutdown does not wait on Redis', async () => {
    const db = await createTestDatabase('webhook_redis_down');
    const deps = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: 'redis://127.0.0.1:1' }), { prefix: uniquePrefix('down') });
    const app = await buildApp(deps);
    let closed = false;
    let ids: number[];
    try {
      await connectKnownUser(deps);
      const post = (body: string) => app.inject({ method: 'POST', url: '/webhooks/oura', payload: body, headers: signed(body) });
      // The first is being queued (Redis never answers) when the second commits.
      const first = await post(JSON.stringify(event()));
      const second = await post(JSON.stringify(event()));
      for (const res of [first, second]) {
        assert.equal(res.statusCode, 200, res.body);
        assert.equal(res.json().status, 'accepted');
      }
      // Durable in Postgres, in the inbox: the sweeper admits them once Redis answers (below).
      ids = [first, second].map((r) => r.json().delivery_id as number);
      const { rows } = await deps.pool.query('select id from oura.webhook_inbox where id = any($1)', [ids]);
      assert.equal(rows.length, 2);
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
    }
    // A worker's sweeper, with Redis back, once SWEEP_GRACE_S has passed.
    const { redisUrl } = await getServices();
    const prefix = uniquePrefix('swept');
    const worker = createDeps(testConfig({ DATABASE_URL: db.url, REDIS_URL: redisUrl, SWEEP_GRACE_S: '1' }), { prefix });
    try {
      await new Promise((r) => setTimeout(r, 1100));
      // A delivery recorded just now is its intake job's to admit, not the sweeper's.
      const { rows } = await worker.pool.query<{ id: string }>(
        `insert into oura.webhook_inbox (event_type, data_type, object_id, user_id, event_time, supported)
         values ('create', 'daily_sleep', 'obj-fresh', 'user-known', now(), true) returning id`,
      );
      assert.deepEqual(await sweepOnce(worker), { admitted: 2, requeued: 0 });
      assert.equal((await worker.pool.query('select 1 from oura.webhook_inbox where id = $1', [rows[0]!.id])).rowCount, 1, 'the fresh one waits');
      for (const id of ids) {
        assert.equal((await worker.events.get(id))?.status, 'queued');
        assert.equal((await worker.queue.getJob(`evt-${id}`))?.data.eventId, id, 'its job queued');
      }
      assert.deepEqual(await sweepOnce(worker), { admitted: 0, requeued: 0 }, 'nothing twice');
    } finally {
      await worker.close();
      await clearPrefix(redisUrl, prefix);
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
