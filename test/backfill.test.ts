import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { pino } from 'pino';
import { DOCUMENT_TYPES, TIME_SERIES, documentTypes } from '../src/oura/registry.js';
import { isoDay } from '../src/dates.js';
import { backfillRange, SERIES_WINDOW_DAYS } from '../src/queues/index.js';
import { reconcileUser } from '../src/workers/refresh.js';
import { refreshPlannerTask } from '../src/workers/refresh-planner.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

interface LogEntry {
  t: number;
  path: string;
  query: string;
  status: number;
  userId: string | null;
}

const DAYS = 90;
const DAY_MS = 86_400_000;

async function progress(stack: Stack, userId: string) {
  const { rows } = await stack.deps.pool.query<{ data_type: string; status: string; cursor: Date; windows_done: number; windows_total: number }>(
    'select data_type, status, cursor, windows_done, windows_total from oura.backfill_progress where user_id = $1',
    [userId],
  );
  return rows;
}

async function backfillDone(stack: Stack, userId: string): Promise<boolean> {
  const rows = await progress(stack, userId);
  return rows.length === DOCUMENT_TYPES.length + TIME_SERIES.length && rows.every((r) => r.status === 'done');
}

/** What the simulator holds for the user in the backfilled range. */
async function simDocuments(stack: Stack, userId: string, type: (typeof DOCUMENT_TYPES)[number]) {
  const { start, end } = backfillRange(DAYS);
  const all = (await stack.simJson('GET', `/_sim/users/${userId}/documents/${type}`)) as Array<Record<string, unknown>>;
  const field = documentTypes[type].dateField;
  if (!field) return all;
  return all.filter((d) => typeof d[field] === 'string' && (d[field] as string) >= isoDay(start) && (d[field] as string) < isoDay(end));
}

/**
 * Reads a time series from the simulator's Oura route with the user's own
 * token, up to `until`: the simulator adds a sample every few minutes, and
 * one added after the backfill's last read is not the backfill's to store.
 */
async function simSeries(stack: Stack, userId: string, type: (typeof TIME_SERIES)[number], until: number) {
  const { start, end } = backfillRange(DAYS);
  const user = await stack.deps.users.get(userId);
  const token = stack.deps.cipher.decrypt(user!.access_token_enc!);
  const rows: Array<Record<string, unknown>> = [];
  for (let from = start; from < end; from += SERIES_WINDOW_DAYS * DAY_MS) {
    const to = Math.min(end, from + SERIES_WINDOW_DAYS * DAY_MS);
    let next: string | null = null;
    do {
      const q = new URLSearchParams({ start_datetime: new Date(from).toISOString(), end_datetime: new Date(to).toISOString() });
      if (next) q.set('next_token', next);
      const res = await fetch(`${stack.sim.url}/v2/usercollection/${type}?${q}`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as { data: Array<Record<string, unknown>>; next_token: string | null };
      rows.push(...body.data);
      next = body.next_token;
    } while (next);
  }
  return rows.filter((r) => Date.parse(r.timestamp as string) < until);
}

describe('backfill on connect', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'backfill', env: { BACKFILL_DAYS: String(DAYS), OURA_APP_RATE_LIMIT: '100/1' } });
  });
  after(async () => {
    await stack?.close();
  });

  test('a user with 120 days of history gets every document and sample of the last 90 days, at ≤ 1 request per 10 items', async (t) => {
    const { id: simUser } = await stack.simJson('POST', '/_sim/users', { historyDays: 120 });
    await stack.simJson('DELETE', '/_sim/requests');
    const userId = await stack.connectUser(simUser);
    assert.equal(userId, simUser);
    await eventually('backfill done', () => backfillDone(stack, userId), { timeoutMs: 90_000, intervalMs: 250 });
    const log = ((await stack.simJson('GET', '/_sim/requests')) as LogEntry[]).filter((r) => r.path.startsWith('/v2/usercollection/') && r.userId === userId);
    const requests = log.length - 1; // personal_info at connect
    // The service accounts for each request by its purpose: the backfill's, and the connect's.
    const byPurpose = new Map<string, number>();
    for (const v of (await stack.deps.metrics.ouraRequests.get()).values) {
      if (String(v.labels.route).startsWith('oauth')) continue;
      byPurpose.set(String(v.labels.purpose), (byPurpose.get(String(v.labels.purpose)) ?? 0) + v.value);
    }
    assert.deepEqual(Object.fromEntries(byPurpose), { backfill: requests, token: 1 }, 'requests by purpose');

    let items = 0;
    for (const type of DOCUMENT_TYPES) {
      const expected = await simDocuments(stack, userId, type);
      const { rows } = await stack.deps.pool.query<{ id: string; document: unknown }>(`select id, document from oura.${type} where user_id = $1`, [userId]);
      assert.deepEqual(rows.map((r) => r.id).sort(), expected.map((d) => String(d.id)).sort(), `${type}: same documents`);
      const byId = new Map(rows.map((r) => [r.id, r.document]));
      for (const d of expected) assert.ok(isDeepStrictEqual(byId.get(String(d.id)), d), `${type} ${d.id}: equal field by field`);
      items += expected.length;
    }
    assert.ok(items > 500, `history has substance: ${items} documents`);
    for (const type of TIME_SERIES) {
      const lastRead = Math.max(...log.filter((r) => r.path === `/v2/usercollection/${type}`).map((r) => r.t));
      const expected = await simSeries(stack, userId, type, lastRead);
      const table = type === 'heartrate' ? 'heartrate' : 'ring_battery_level';
      const { rows } = await stack.deps.pool.query(`select * from oura.${table} where user_id = $1 order by timestamp`, [userId]);
      assert.equal(rows.length, expected.length, `${type}: every sample`);
      for (let i = 0; i < expected.length; i += 97) {
        const e = expected[i]!;
        const r = rows.find((x) => new Date(x.timestamp).getTime() === Date.parse(e.timestamp as string) && (type !== 'heartrate' || x.source === e.source));
        assert.ok(r, `${type} sample at ${e.timestamp}`);
        if (type === 'heartrate') assert.equal(r.bpm, e.bpm);
        else assert.equal(r.level, e.level);
      }
      items += expected.length;
    }
    const perItem = requests / items;
    t.diagnostic(`backfill: ${requests} requests for ${items} documents and samples (${perItem.toFixed(4)} requests per item)`);
    assert.ok(requests * 10 <= items, `${requests} requests for ${items} items`);
  });

  test('live webhook work goes ahead of a running backfill, which still progresses', async () => {
    // A tight budget so the backfill alone would saturate it.
    const tight = await startStack({ label: 'priority', env: { BACKFILL_DAYS: String(DAYS), OURA_APP_RATE_LIMIT: '8/1' } });
    try {
      await tight.subscribeAll(['workout', 'tag', 'session']);
      const { id: heavy } = await tight.simJson('POST', '/_sim/users', { historyDays: 120 });
      await tight.connectUser(heavy);
      const live = await tight.connectUser();
      await eventually('backfill under way', async () => (await progress(tight, heavy)).some((r) => r.windows_done > 0));
      const latencies: number[] = [];
      for (const type of ['workout', 'tag', 'session', 'workout', 'tag']) {
        const t0 = Date.now();
        const doc = await tight.simJson('POST', `/_sim/users/${live}/documents/${type}`, { notify: true });
        await eventually(`${type} stored`, async () => (await tight.deps.pool.query(`select 1 from oura.${type} where id = $1`, [doc.id])).rowCount === 1, {
          timeoutMs: 20_000,
          intervalMs: 20,
        });
        latencies.push(Date.now() - t0);
      }
      const rows = await progress(tight, heavy);
      assert.ok(rows.some((r) => r.status !== 'done'), 'the backfill was still running during the live events');
      assert.ok(Math.max(...latencies) < 2000, `live events served within 2 s during the backfill: ${latencies.join(', ')} ms`);
      await eventually('backfill finishes too', () => backfillDone(tight, heavy), { timeoutMs: 120_000, intervalMs: 500 });
    } finally {
      await tight.close();
    }
  });

  test('a worker killed mid-backfill resumes without re-fetching finished windows', async () => {
    const s = await startStack({ label: 'bfkill', inProcessWorker: false, env: { BACKFILL_DAYS: String(DAYS), OURA_APP_RATE_LIMIT: '10/1', JOB_LOCK_MS: '2000' } });
    try {
      const { id: simUser } = await s.simJson('POST', '/_sim/users', { historyDays: 120 });
      await s.connectUser(simUser);
      const first = s.spawnProcess('worker');
      await eventually('some windows finished', async () => (await progress(s, simUser)).filter((r) => r.windows_done > 0).length >= 6, {
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      const exited = once(first, 'exit');
      first.kill('SIGKILL');
      await exited;
      const killedAt = Date.now();
      const atKill = new Map((await progress(s, simUser)).map((r) => [r.data_type, r]));
      assert.ok([...atKill.values()].some((r) => r.status !== 'done'), 'killed mid-backfill');
      s.spawnProcess('worker');
      await eventually('backfill done after restart', () => backfillDone(s, simUser), { timeoutMs: 120_000, intervalMs: 250 });

      const after = ((await s.simJson('GET', '/_sim/requests')) as LogEntry[]).filter((r) => r.t > killedAt && r.path.startsWith('/v2/usercollection/'));
      for (const r of after) {
        const type = r.path.split('/').pop()!;
        const row = atKill.get(type.toLowerCase() === 'vo2_max' ? 'vo2_max' : type);
        if (!row) continue;
        const q = new URLSearchParams(r.query);
        if (q.get('next_token')) continue;
        const start = q.get('start_date') ?? q.get('start_datetime');
        if (row.status === 'done') assert.fail(`${type} was finished before the kill but fetched again (${r.query})`);
        if (start) assert.ok(Date.parse(start) >= row.cursor.getTime() - 1000, `${type}: window before the cursor fetched again (${start})`);
      }
    } finally {
      await s.close();
    }
  });
});

describe('reconciliation', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'reconcile', env: { BACKFILL_DAYS: '5' } });
  });
  after(async () => {
    await stack?.close();
  });

  test('a document created with no webhook appears, one deleted with no webhook disappears, series catch up', async () => {
    const { id: simUser } = await stack.simJson('POST', '/_sim/users', { historyDays: 5 });
    const userId = await stack.connectUser(simUser);
    await eventually('initial backfill done', () => backfillDone(stack, userId), { timeoutMs: 30_000 });
    const created = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_activity`, { notify: false });
    const victim = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, { notify: false });
    const first = await reconcileUser(stack.deps, userId);
    assert.ok(first.stored > 0);
    const { rows: got } = await stack.deps.pool.query('select document from oura.daily_activity where id = $1', [created.id]);
    assert.deepEqual(got[0]?.document, created, 'the unannounced document appeared');
    assert.equal((await stack.deps.pool.query('select 1 from oura.workout where id = $1', [victim.id])).rowCount, 1);

    await stack.simJson('DELETE', `/_sim/users/${userId}/documents/workout/${victim.id}`);
    const second = await reconcileUser(stack.deps, userId);
    assert.ok(second.removed >= 1);
    assert.equal((await stack.deps.pool.query('select 1 from oura.workout where id = $1', [victim.id])).rowCount, 0, 'the unannounced deletion happened');
    // Older documents, outside the reconciled window, are left alone.
    const { rows: old } = await stack.deps.pool.query<{ n: number }>(
      `select count(*)::int as n from oura.daily_sleep where user_id = $1 and day < current_date - 3`,
      [userId],
    );
    assert.ok(old[0]!.n > 0);
  });

  test('the planner queues a user past the reconcile target once, and the job re-syncs them', async () => {
    const { id: simUser } = await stack.simJson('POST', '/_sim/users', { historyDays: 2 });
    const userId = await stack.connectUser(simUser);
    await eventually('the backfill done', async () => {
      const { rows } = await stack.deps.pool.query<{ n: number; open: number }>(
        `select count(*)::int as n, count(*) filter (where status <> 'done')::int as open from oura.backfill_progress where user_id = $1`,
        [userId],
      );
      return rows[0]!.n > 0 && rows[0]!.open === 0;
    });
    // Past the target, as if a week had gone by.
    await stack.deps.pool.query(`update oura.users set reconciled_at = now() - interval '8 days' where id = $1`, [userId]);
    const created = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_readiness`, { notify: false });
    const planner = refreshPlannerTask(stack.deps);
    const queue = stack.deps.refreshQueues.reconcile;
    await queue.pause();
    try {
      await planner.run(stack.deps, stack.deps.log);
      await planner.run(stack.deps, stack.deps.log);
      const jobs = (await queue.getJobs(['waiting', 'prioritized'])).filter((j) => j.data.userId === userId);
      assert.equal(jobs.length, 1, 'queued once, however often the planner runs');
    } finally {
      await queue.resume();
    }
    await eventually('reconciled document stored', async () =>
      (await stack.deps.pool.query('select 1 from oura.daily_readiness where id = $1', [created.id])).rowCount === 1,
    );
    await eventually('the run recorded', async () => {
      const { rows } = await stack.deps.pool.query('select reconciled_at from oura.users where id = $1', [userId]);
      return Date.now() - new Date(rows[0].reconciled_at).getTime() < 60_000;
    });
  });

  test('the planner warns when the newest webhook is older than SILENCE_ALERT_S while users are active', async () => {
    const { id: simUser } = await stack.simJson('POST', '/_sim/users', { historyDays: 1 });
    await stack.connectUser(simUser);
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
    const tick = refreshPlannerTask(stack.deps);
    const record = (receivedAgo: string) =>
      stack.deps.pool.query(
        `insert into oura.webhook_events (dedupe_key, event_type, data_type, object_id, user_id, event_time, received_at, status)
         values (md5(random()::text), 'update', 'daily_sleep', 'x', $1, now(), now() - $2::interval, 'done')`,
        [simUser, receivedAgo],
      );
    const silent = () => warnings.filter((m) => m.startsWith('no webhook received')).length;

    await record('2 days');
    await tick.run(stack.deps, log);
    assert.equal(silent(), 1, 'two days of silence against the default SILENCE_ALERT_S of one day');
    // The newest delivery is the one that counts, whatever came before it.
    await record('0 seconds');
    await tick.run(stack.deps, log);
    assert.equal(silent(), 1, 'no warning once a webhook arrived');
  });
});
