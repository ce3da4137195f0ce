import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { eventually, startStack, type Stack } from './helpers/stack.js';

interface LogEntry {
  t: number;
  path: string;
  status: number;
  userId: string | null;
}

async function eventRows(stack: Stack, userId: string) {
  const { rows } = await stack.deps.pool.query<{ id: number; status: string; outcome: string | null; object_id: string }>(
    'select id, status, outcome, object_id from oura.webhook_events where user_id = $1 order by id',
    [userId],
  );
  return rows;
}

describe('failure semantics against the simulator', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      label: 'failures',
      env: { JOB_ATTEMPTS: '3', JOB_BACKOFF_MS: '50' },
    });
    await stack.subscribeAll(['daily_activity', 'daily_sleep', 'workout', 'session', 'tag']);
  });
  after(async () => {
    await stack?.close();
  });

  test('30 concurrent 401s cost exactly one refresh grant', async () => {
    const userId = await stack.connectUser();
    const grantsBefore = (await stack.simJson('GET', '/_sim/stats')).grants.refresh_token;
    await stack.simJson('POST', `/_sim/users/${userId}/expire-tokens`);
    const results = await Promise.all(
      Array.from({ length: 30 }, () => stack.deps.tokens.withToken(userId, (t) => stack.deps.oura.personalInfo(t))),
    );
    assert.equal(results.length, 30);
    assert.ok(results.every((r) => r.id === userId));
    const grantsAfter = (await stack.simJson('GET', '/_sim/stats')).grants.refresh_token;
    assert.equal(grantsAfter - grantsBefore, 1);
    const log = (await stack.simJson('GET', '/_sim/requests')) as LogEntry[];
    assert.ok(log.filter((r) => r.path === '/v2/usercollection/personal_info' && r.status === 401).length >= 1);
  });

  test('a refused refresh makes the user reauth_required, parks their events, and reconnecting resumes them', async () => {
    const userId = await stack.connectUser();
    await stack.simJson('POST', `/_sim/users/${userId}/revoke`);
    const since = Date.now();
    const docs = [];
    for (const type of ['daily_activity', 'daily_sleep', 'workout', 'session', 'tag']) {
      for (let i = 0; i < 3; i++) docs.push({ type, doc: await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true }) });
    }
    await eventually('user marked reauth_required and events parked', async () => {
      const user = await stack.deps.users.get(userId);
      const rows = await eventRows(stack, userId);
      return user?.status === 'reauth_required' && rows.length === docs.length && rows.every((r) => r.status === 'parked');
    });
    const user = await stack.deps.users.get(userId);
    assert.match(user!.status_reason!, /invalid_grant/);
    // No retry storm: a handful of requests for this user at most (the 401s and the refused refresh).
    await new Promise((r) => setTimeout(r, 500));
    const log = (await stack.simJson('GET', `/_sim/requests?since=${since}`)) as LogEntry[];
    const forUser = log.filter((r) => r.userId === userId);
    const refreshes = log.filter((r) => r.path === '/oauth/token');
    assert.ok(forUser.length + refreshes.length <= 6, `requests after revoke: ${forUser.length} + ${refreshes.length} refreshes`);

    await stack.connectUser(userId);
    assert.equal((await stack.deps.users.get(userId))?.status, 'active');
    await eventually('parked events served after reconnect', async () => {
      const rows = await eventRows(stack, userId);
      return rows.every((r) => r.status === 'done' && r.outcome === 'stored');
    });
    for (const { type, doc } of docs) {
      const { rows } = await stack.deps.pool.query(`select document from oura.${type} where id = $1`, [doc.id]);
      assert.deepEqual(rows[0]?.document, doc);
    }
  });

  test('403 is recorded on the user with its reason and not retried', async () => {
    const userId = await stack.connectUser();
    await stack.simJson('POST', '/_sim/faults', { status: 403, count: 1, userId });
    const since = Date.now();
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_activity`, { notify: true });
    await eventually('event failed', async () => (await eventRows(stack, userId)).some((r) => r.status === 'failed'));
    const [row] = await eventRows(stack, userId);
    assert.equal(row!.outcome, 'forbidden');
    const user = await stack.deps.users.get(userId);
    assert.match(user!.access_error!, /^403/);
    await new Promise((r) => setTimeout(r, 300));
    const log = (await stack.simJson('GET', `/_sim/requests?since=${since}`)) as LogEntry[];
    assert.equal(log.filter((r) => r.path.includes(doc.id)).length, 1, 'one request, no retry');
  });

  test('5xx is retried with backoff, then dead-lettered with its reason, and a replay lands it', async () => {
    const userId = await stack.connectUser();
    await stack.simJson('POST', '/_sim/faults', { status: 503, count: 3, userId });
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, { notify: true });
    await eventually('event failed after its attempts', async () => (await eventRows(stack, userId)).some((r) => r.status === 'failed'));
    const [row] = await eventRows(stack, userId);
    const job = await stack.deps.queue.getJob(`evt-${row!.id}`);
    assert.equal(await job!.getState(), 'failed');
    assert.equal(job!.attemptsMade, 3);
    assert.match(job!.failedReason, /503/);
    const log = (await stack.simJson('GET', '/_sim/requests')) as LogEntry[];
    assert.equal(log.filter((r) => r.path.includes(doc.id) && r.status === 503).length, 3);

    // Replay: the job runs again and the document lands.
    await stack.deps.pool.query(`update oura.webhook_events set status = 'queued' where id = $1`, [row!.id]);
    await job!.retry('failed');
    await eventually('document stored after replay', async () => {
      const { rows } = await stack.deps.pool.query('select 1 from oura.workout where id = $1', [doc.id]);
      return rows.length === 1;
    });
  });

  test('a 429 puts the job back without spending an attempt and pauses calls for Retry-After', async () => {
    const userId = await stack.connectUser();
    await stack.simJson('POST', '/_sim/faults', { status: 429, count: 4, userId, tier: 'token', retryAfterS: 1 });
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/tag`, { notify: true });
    await eventually('document stored despite 429s', async () => {
      const { rows } = await stack.deps.pool.query('select 1 from oura.tag where id = $1', [doc.id]);
      return rows.length === 1;
    });
    // The worker marks the event done right after writing the document.
    const row = await eventually('its event done', async () => (await eventRows(stack, userId)).find((r) => r.status === 'done'));
    const job = await stack.deps.queue.getJob(`evt-${row.id}`);
    // BullMQ records the job's end just after the worker returns: read its state once it has one.
    const state = job && (await eventually('its job ended', async () => {
      const s = await job.getState();
      return s === 'completed' || s === 'failed' ? s : null;
    }));
    // Four 429s with JOB_ATTEMPTS=3: had a 429 spent an attempt, the job would have failed.
    assert.ok(!job || state === 'completed');
    const log = (await stack.simJson('GET', '/_sim/requests')) as LogEntry[];
    const mine = log.filter((r) => r.userId === userId && r.path.startsWith('/v2/usercollection/tag'));
    const limited = mine.filter((r) => r.status === 429);
    assert.equal(limited.length, 4);
    for (let i = 1; i < mine.length; i++) {
      if (mine[i - 1]!.status === 429) assert.ok(mine[i]!.t - mine[i - 1]!.t >= 900, 'waited Retry-After before the next call');
    }
  });
});
