import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { createDb } from '../src/db/index.js';
import { createEventsRepo } from '../src/db/events.js';
import { personalInfoPath } from '../src/oura/registry.js';
import { eventJobId } from '../src/queues/index.js';
import { TEST_SECRETS } from './helpers/env.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

const ADMIN_ROUTES: Array<[method: string, path: string, body?: unknown]> = [
  ['GET', '/admin/users'],
  ['DELETE', '/admin/users/some-user'],
  ['POST', '/admin/users/some-user/backfill', { days: 3 }],
  ['GET', '/admin/failed'],
  ['POST', '/admin/failed/replay', {}],
  ['GET', '/admin/subscriptions'],
  ['POST', '/admin/subscriptions/sync'],
];

describe('admin API', () => {
  let stack: Stack;

  async function admin(method: string, path: string, body?: unknown, authorization: string | null = `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`) {
    const headers: Record<string, string> = {};
    if (authorization !== null) headers.authorization = authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${stack.apiUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, text };
  }

  /**
   * Rows of a user in every table of schema `oura` that has a user_id column,
   * plus oura.users by id; the change feed's user.disconnected, which a
   * deletion leaves on purpose, not counted.
   */
  async function rowsOfUser(userId: string): Promise<Record<string, number>> {
    const { rows: tables } = await stack.deps.pool.query<{ table_name: string }>(
      `select c.table_name from information_schema.columns c
       join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
       where c.table_schema = 'oura' and c.column_name = 'user_id' and t.table_type = 'BASE TABLE'`,
    );
    assert.ok(tables.length >= 19, `found the document, time-series and event tables (${tables.length})`);
    const counts: Record<string, number> = {};
    for (const { table_name } of tables) {
      const disconnected = table_name === 'changes' ? ` and op <> 'disconnected'` : '';
      const r = await stack.deps.pool.query<{ n: string }>(`select count(*) as n from oura."${table_name}" where user_id = $1${disconnected}`, [userId]);
      counts[table_name] = Number(r.rows[0]!.n);
    }
    const u = await stack.deps.pool.query<{ n: string }>('select count(*) as n from oura.users where id = $1', [userId]);
    counts.users = Number(u.rows[0]!.n);
    return Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0));
  }

  async function documentRow(type: string, id: string) {
    const r = await stack.deps.pool.query(`select * from oura."${type}" where id = $1`, [id]);
    return r.rows[0] ?? null;
  }

  async function eventOf(objectId: string) {
    const r = await stack.deps.pool.query<{ id: string; status: string; outcome: string | null; user_id: string }>(
      'select id, status, outcome, user_id from oura.webhook_events where object_id = $1 order by id desc limit 1',
      [objectId],
    );
    return r.rows[0] ?? null;
  }

  /** Runs a job's retries back to back (BullMQ's promote skips the backoff wait) until it is in the failed set. */
  async function untilFailed(jobId: string) {
    await eventually(
      `job ${jobId} failed for good`,
      async () => {
        const job = await stack.deps.queue.getJob(jobId);
        if (!job) return false;
        const state = await job.getState();
        if (state === 'delayed') await job.promote().catch(() => {});
        return state === 'failed';
      },
      { timeoutMs: 15_000, intervalMs: 20 },
    );
  }

  before(async () => {
    stack = await startStack({ label: 'admin' });
    await stack.subscribeAll(['daily_sleep', 'workout']);
  });
  after(async () => {
    await stack?.close();
  });

  test('every admin route answers 401 without the admin token, and does nothing', async () => {
    const userId = await stack.connectUser();
    const subsBefore = (await stack.simJson('GET', '/_sim/subscriptions')).length;
    const wrong = [
      null,
      '',
      'Bearer',
      'Bearer not-the-admin-token-at-all',
      `Bearer ${TEST_SECRETS.ADMIN_TOKEN}x`,
      `Bearer ${TEST_SECRETS.ADMIN_TOKEN.slice(0, -1)}`,
      `Basic ${Buffer.from(`admin:${TEST_SECRETS.ADMIN_TOKEN}`).toString('base64')}`,
      TEST_SECRETS.ADMIN_TOKEN,
    ];
    for (const [method, path, body] of [...ADMIN_ROUTES, ['DELETE', `/admin/users/${userId}`] as [string, string]]) {
      for (const authorization of wrong) {
        const res = await admin(method, path, body, authorization);
        assert.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(authorization)}`);
        assert.equal(res.body.code, 'unauthorized');
        assert.equal(typeof res.body.message, 'string');
        assert.equal(typeof res.body.request_id, 'string');
      }
    }
    assert.equal((await stack.deps.users.get(userId))?.status, 'active', 'the user was not disconnected');
    assert.equal((await stack.simJson('GET', '/_sim/subscriptions')).length, subsBefore, 'no subscription was created');
    // The scheme is case-insensitive; the right token opens every route.
    assert.equal((await admin('GET', '/admin/users', undefined, `bearer ${TEST_SECRETS.ADMIN_TOKEN}`)).status, 200);
  });

  test('users list shows status and activity, never tokens or personal info', async () => {
    const userId = await stack.connectUser();
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_sleep`, { notify: true });
    await eventually('document stored', () => documentRow('daily_sleep', doc.id));

    // The api writes webhook arrival times once a second; the worker its last fetch just after storing the document.
    const res = await eventually('last webhook and fetch recorded', async () => {
      const r = await admin('GET', '/admin/users');
      const u = r.body.users?.find((u: { id: string }) => u.id === userId);
      return u?.last_webhook_at && u.last_fetch_at ? r : null;
    });
    assert.equal(res.status, 200);
    const user = res.body.users.find((u: { id: string }) => u.id === userId);
    assert.ok(user, 'the connected user is listed');
    assert.deepEqual(Object.keys(user).sort(), ['access_error', 'backfill', 'connected_at', 'id', 'last_fetch_at', 'last_webhook_at', 'status', 'status_reason']);
    assert.equal(user.status, 'active');
    assert.equal(user.status_reason, null);
    for (const field of ['connected_at', 'last_webhook_at', 'last_fetch_at']) {
      assert.ok(!Number.isNaN(Date.parse(user[field])), `${field} is a date-time (${user[field]})`);
    }
    const tokens = stack.sim.state.tokensOf(userId);
    for (const t of [...tokens.access, ...tokens.refresh]) assert.equal(res.text.includes(t), false, 'no token in the answer');
    assert.equal(res.text.includes('v1.'), false, 'no token ciphertext in the answer');
    assert.equal(res.text.includes('@sim.example'), false, 'no personal info in the answer');
  });

  test('disconnect revokes at Oura, leaves no row of the user in any oura table, and later events are ignored', async () => {
    const userId = await stack.connectUser();
    const other = await stack.connectUser();
    const docs: Array<{ id: string }> = [];
    for (const [who, type] of [[userId, 'daily_sleep'], [userId, 'workout'], [other, 'workout']] as const) {
      const d = await stack.simJson('POST', `/_sim/users/${who}/documents/${type}`, { notify: true });
      await eventually(`${type} stored`, () => documentRow(type, d.id));
      docs.push(d);
    }
    for (const who of [userId, other]) {
      await stack.deps.pool.query(`insert into oura.heartrate (user_id, timestamp, bpm, source) values ($1, now(), 61, 'awake')`, [who]);
      await stack.deps.pool.query(`insert into oura.ring_battery_level (user_id, timestamp, level) values ($1, now(), 80)`, [who]);
    }
    // An event still being retried when the user goes: Oura keeps failing for that document.
    const pending = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_sleep`, {});
    await stack.simJson('POST', '/_sim/faults', { status: 500, count: 1000, path: `/v2/usercollection/daily_sleep/${pending.id}` });
    await stack.simJson('POST', '/_sim/events', { event_type: 'create', data_type: 'daily_sleep', object_id: pending.id, user_id: userId });
    const pendingEvent = await eventually('pending event recorded', () => eventOf(pending.id));
    const pendingJob = eventJobId(Number(pendingEvent.id));

    const before = await rowsOfUser(userId);
    for (const table of ['users', 'daily_sleep', 'workout', 'heartrate', 'ring_battery_level', 'webhook_events']) {
      assert.ok(before[table], `before: the user has rows in ${table}`);
    }
    const user = await stack.deps.users.get(userId);
    const accessToken = stack.deps.cipher.decrypt(user!.access_token_enc!);
    const personalInfo = () => fetch(`${stack.sim.url}${personalInfoPath}`, { headers: { authorization: `Bearer ${accessToken}` } });
    assert.equal((await personalInfo()).status, 200, 'the token works before');

    const res = await admin('DELETE', `/admin/users/${encodeURIComponent(userId)}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.user_id, userId);
    assert.equal(res.body.revoked, true);
    assert.ok(res.body.deleted_rows >= 8, `deleted ${res.body.deleted_rows} rows`);

    assert.deepEqual(await rowsOfUser(userId), {}, 'no row of the user is left in schema oura');
    const feed = await stack.deps.pool.query<{ kind: string; op: string }>('select kind, op from oura.changes where user_id = $1', [userId]);
    assert.deepEqual(feed.rows, [{ kind: 'user', op: 'disconnected' }], 'the change feed keeps one change for the user: they are gone');
    assert.equal((await personalInfo()).status, 401, 'the token was revoked at Oura');
    const otherRows = await rowsOfUser(other);
    for (const table of ['users', 'workout', 'heartrate', 'ring_battery_level', 'webhook_events']) {
      assert.ok(otherRows[table], `the other user keeps their rows in ${table}`);
    }
    assert.equal((await admin('GET', '/admin/users')).body.users.some((u: { id: string }) => u.id === userId), false);

    // The job that was waiting to retry does nothing more.
    await eventually('the pending job is gone or finished', async () => {
      const job = await stack.deps.queue.getJob(pendingJob);
      if (!job) return true;
      const state = await job.getState();
      if (state === 'delayed') await job.promote().catch(() => {});
      return state === 'completed' || state === 'failed' || state === 'unknown';
    });
    await stack.simJson('DELETE', '/_sim/faults');
    assert.equal(await documentRow('daily_sleep', pending.id), null);

    // A later event for the user is acknowledged, recorded, and ignored by the worker.
    const late = await stack.simJson('POST', '/_sim/events', { event_type: 'update', data_type: 'workout', object_id: docs[1]!.id, user_id: userId });
    assert.ok(late.deliveries.length > 0 && late.deliveries.every((d: { status: number }) => d.status === 200), JSON.stringify(late));
    const ignored = await eventually('the late event finished', async () => {
      const e = await eventOf(docs[1]!.id);
      return e && e.status !== 'queued' ? e : null;
    });
    assert.equal(ignored.status, 'ignored');
    assert.equal(ignored.outcome, 'user_unknown');
    assert.equal(await documentRow('workout', docs[1]!.id), null, 'the late event fetched nothing');

    const again = await admin('DELETE', `/admin/users/${encodeURIComponent(userId)}`);
    assert.equal(again.status, 404);
    assert.equal(again.body.code, 'not_found');

    // Connecting again later works like a new connection.
    assert.equal(await stack.connectUser(userId), userId);
    const back = await stack.deps.users.get(userId);
    assert.equal(back?.status, 'active');
    const fresh = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, { notify: true });
    await eventually('a document of the reconnected user is stored', () => documentRow('workout', fresh.id));
  });

  test('a user deleted while their accepted deliveries are being admitted leaves no row behind', async () => {
    const userId = await stack.connectUser();
    const { rows } = await stack.deps.pool.query<{ id: string }>(
      `insert into oura.webhook_inbox (event_type, data_type, object_id, user_id, event_time, supported)
       values ('create', 'workout', 'obj-racing-delete', $1, now(), true) returning id`,
      [userId],
    );
    // An intake worker admitting the delivery, caught inside its transaction.
    const client = await stack.deps.pool.connect();
    try {
      await client.query('begin');
      const admitted = await createEventsRepo(createDb(client as unknown as pg.Pool)).admitDeliveries([Number(rows[0]!.id)]);
      assert.equal(admitted.queued.length, 1);
      const deleting = stack.deps.admin.deleteUser(userId);
      await eventually('the delete waits for the admission', async () => {
        const r = await stack.deps.pool.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query ilike '%delete from oura.%'`,
        );
        return r.rows[0]!.n > 0;
      });
      await client.query('commit');
      assert.ok(await deleting);
    } finally {
      client.release();
    }
    assert.deepEqual(await rowsOfUser(userId), {}, 'neither the delivery nor the event it became is left');
  });

  test('a dead-lettered event is listed with its event, and once replayed its document lands', async () => {
    const userId = await stack.connectUser();
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, {});
    await stack.simJson('POST', '/_sim/faults', { status: 500, count: 1000, path: `/v2/usercollection/workout/${doc.id}` });
    await stack.simJson('POST', '/_sim/events', { event_type: 'create', data_type: 'workout', object_id: doc.id, user_id: userId });
    const event = await eventually('event recorded', () => eventOf(doc.id));
    const jobId = eventJobId(Number(event.id));
    await untilFailed(jobId);
    await eventually('event marked failed', async () => (await eventOf(doc.id))?.status === 'failed');

    const list = await admin('GET', '/admin/failed');
    assert.equal(list.status, 200);
    assert.equal(list.body.total, 1);
    const [dead] = list.body.failed;
    assert.equal(dead.job_id, jobId);
    assert.equal(dead.event_id, Number(event.id));
    assert.deepEqual(dead.event, {
      event_type: 'create',
      data_type: 'workout',
      user_id: userId,
      object_id: doc.id,
      status: 'failed',
      outcome: dead.event.outcome,
    });
    assert.ok(dead.attempts_made >= 2, `attempts made: ${dead.attempts_made}`);
    assert.match(dead.failed_reason, /500/);
    for (const field of ['created_at', 'failed_at']) assert.ok(!Number.isNaN(Date.parse(dead[field])), field);
    assert.equal(list.text.includes('"document"'), false);

    // Bad input changes nothing.
    const unknown = await admin('POST', '/admin/failed/replay', { ids: ['evt-999999999'] });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'not_found');
    const malformed = await admin('POST', '/admin/failed/replay', { ids: 'all' });
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.code, 'invalid_body');
    assert.equal((await admin('GET', '/admin/failed')).body.total, 1);

    // Oura recovers; the replay fetches the document.
    await stack.simJson('DELETE', '/_sim/faults');
    const replay = await admin('POST', '/admin/failed/replay', { ids: [jobId] });
    assert.equal(replay.status, 200, replay.text);
    assert.deepEqual(replay.body, { replayed: 1 });
    const stored = await eventually('replayed document stored', () => documentRow('workout', doc.id));
    assert.deepEqual(stored.document, doc);
    await eventually('event done', async () => (await eventOf(doc.id))?.status === 'done');
    assert.equal((await admin('GET', '/admin/failed')).body.total, 0);
    assert.deepEqual((await admin('POST', '/admin/failed/replay')).body, { replayed: 0 }, 'replaying all with none failed');
  });

  test('replay without ids re-queues every failed job', async () => {
    const userId = await stack.connectUser();
    const docs = [];
    for (let i = 0; i < 2; i++) {
      const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_sleep`, {});
      await stack.simJson('POST', '/_sim/faults', { status: 500, count: 1000, path: `/v2/usercollection/daily_sleep/${doc.id}` });
      await stack.simJson('POST', '/_sim/events', { event_type: 'create', data_type: 'daily_sleep', object_id: doc.id, user_id: userId });
      const event = await eventually('event recorded', () => eventOf(doc.id));
      await untilFailed(eventJobId(Number(event.id)));
      await eventually('event marked failed', async () => (await eventOf(doc.id))?.status === 'failed');
      docs.push(doc);
    }
    assert.equal((await admin('GET', '/admin/failed?limit=1')).body.failed.length, 1, 'limit is honoured');
    assert.equal((await admin('GET', '/admin/failed')).body.total, 2);
    await stack.simJson('DELETE', '/_sim/faults');
    assert.deepEqual((await admin('POST', '/admin/failed/replay', {})).body, { replayed: 2 });
    for (const doc of docs) await eventually('replayed document stored', () => documentRow('daily_sleep', doc.id));
  });
  test('backfill on demand: starts for a known user, progress shows in GET /admin/users; bad input is refused', async () => {
    const { id: simUser } = await stack.simJson('POST', '/_sim/users', { historyDays: 4 });
    const userId = await stack.connectUser(simUser);
    const started = await admin('POST', `/admin/users/${userId}/backfill`, { days: 3 });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.deepEqual(started.body, { user_id: userId, days: 3, status: 'started' });
    const done = await eventually('backfill listed as done', async () => {
      const res = await admin('GET', '/admin/users');
      const u = (res.body.users as Array<{ id: string; backfill: { status: string } | null }>).find((x) => x.id === userId);
      return u?.backfill?.status === 'done' ? u : null;
    }, { timeoutMs: 30_000 });
    const b = (done as unknown as { backfill: { types_done: number; types_total: number; items: number; requests: number } }).backfill;
    assert.equal(b.types_done, 18);
    assert.equal(b.types_total, 18);
    assert.ok(b.items > 0 && b.requests > 0);
    const { rows } = await stack.deps.pool.query<{ n: number }>('select count(*)::int as n from oura.daily_sleep where user_id = $1', [userId]);
    assert.ok(rows[0]!.n >= 3, 'history landed');

    const unknown = await admin('POST', '/admin/users/nobody/backfill', { days: 3 });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.body.code, 'not_found');
    for (const body of [{ days: 0 }, { days: 'ten' }, { days: 5000 }, { weeks: 2 }]) {
      const bad = await admin('POST', `/admin/users/${userId}/backfill`, body);
      assert.equal(bad.status, 400, JSON.stringify(body));
      assert.equal(bad.body.code, 'invalid_body');
    }
  });
});
