import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { createBackfillRepo } from '../src/db/backfill.js';
import type { Deps } from '../src/deps.js';
import { cursorOf, feedEnd, readChanges, type Change, type ChangeCursor } from '../src/db/changes.js';
import { createDocumentsRepo } from '../src/db/documents.js';
import { createDb, createPool, type Db } from '../src/db/index.js';
import { createPartnerWebhooksRepo } from '../src/db/partner-webhooks.js';
import { createSeriesRepo } from '../src/db/series.js';
import { createUsersRepo } from '../src/db/users.js';
import { changesRetentionTask } from '../src/workers/changes-retention.js';
import { createTestDatabase, type TestDatabase } from './helpers/env.js';

/**
 * oura.changes, the change feed partners read: one change per real change,
 * written with the data, and a cursor that never skips one however the
 * writers' commits interleave.
 */
describe('the change feed (oura.changes)', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let db: Db;
  let documents: ReturnType<typeof createDocumentsRepo>;
  let series: ReturnType<typeof createSeriesRepo>;
  let users: ReturnType<typeof createUsersRepo>;

  before(async () => {
    database = await createTestDatabase('changes');
    pool = createPool({ url: database.url, max: 12 });
    db = createDb(pool);
    documents = createDocumentsRepo(db);
    series = createSeriesRepo(db);
    users = createUsersRepo(db);
  });
  after(async () => {
    await pool?.end();
    await database?.drop();
  });

  let nextUser = 0;
  async function newUser(): Promise<string> {
    const id = `user-${++nextUser}`;
    await pool.query(`insert into oura.users (id, access_token_enc, refresh_token_enc) values ($1, 'x', 'y')`, [id]);
    return id;
  }

  /** Every change readable after the cursor, and the cursor after them. */
  async function drain(from: ChangeCursor): Promise<{ changes: Change[]; cursor: ChangeCursor }> {
    const all: Change[] = [];
    let cursor = from;
    for (;;) {
      const batch = await readChanges(db, cursor, 100);
      if (batch.length === 0) return { changes: all, cursor };
      all.push(...batch);
      cursor = cursorOf(batch.at(-1)!);
    }
  }

  /**
   * The user's changes after `start`, once `enough` says they are all there.
   * A write transaction anywhere in the cluster (another test's database
   * too) holds back what the feed shows until it ends: the feed is late
   * then, never wrong.
   */
  async function feedOf(user: string, start: ChangeCursor, enough: (changes: Change[]) => boolean): Promise<Change[]> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const changes = (await drain(start)).changes.filter((c) => c.user_id === user);
      if (enough(changes) || Date.now() > deadline) return changes;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const count = (n: number) => (changes: Change[]) => changes.length >= n;

  const brief = (c: Change) =>
    [c.kind, c.op, c.data_type, c.object_id, c.day, c.range_start, c.range_end].filter((v) => v !== null).join(' ');

  test("a document's creation, update and deletion are one change each; a re-read that changes nothing is none", async () => {
    const user = await newUser();
    const start = await feedEnd(db);
    const doc = { id: 'sleep-1', day: '2026-11-30', score: 80, contributors: { deep_sleep: 70 } };
    await documents.upsert('daily_sleep', user, [doc]);
    const { rows: [first] } = await pool.query<{ fetched_at: Date }>(`select fetched_at from oura.daily_sleep where id = 'sleep-1'`);
    // The same content, its keys in another order: jsonb compares values.
    await documents.upsert('daily_sleep', user, [{ contributors: { deep_sleep: 70 }, score: 80, day: '2026-11-30', id: 'sleep-1' }]);
    const { rows: [second] } = await pool.query<{ fetched_at: Date }>(`select fetched_at from oura.daily_sleep where id = 'sleep-1'`);
    assert.ok(second!.fetched_at > first!.fetched_at, 'fetched_at still says when it was last read');
    await documents.upsert('daily_sleep', user, [{ ...doc, score: 81 }, { id: 'sleep-2', day: '2026-12-01', score: 75 }]);
    await documents.removeMany('daily_sleep', user, ['sleep-1', 'never-stored']);
    await documents.removeMissing('daily_sleep', user, { startDay: '2026-12-01', endDay: '2026-12-02' }, []);

    const changes = await feedOf(user, start, count(5));
    assert.deepEqual(changes.map(brief), [
      'document create daily_sleep sleep-1 2026-11-30',
      'document update daily_sleep sleep-1 2026-11-30',
      'document create daily_sleep sleep-2 2026-12-01',
      'document delete daily_sleep sleep-1 2026-11-30',
      'document delete daily_sleep sleep-2 2026-12-01',
    ]);
  });

  test('a re-read refills a column that differs from its document (a column added later, a conversion fixed): an update', async () => {
    const user = await newUser();
    const start = await feedEnd(db);
    const doc = { id: 'sleep-refill', day: '2026-12-02', score: 70 };
    await documents.upsert('daily_sleep', user, [doc]);
    await pool.query(`update oura.daily_sleep set score = null where id = 'sleep-refill'`);
    await documents.upsert('daily_sleep', user, [doc]);
    const { rows } = await pool.query<{ score: string | null }>(`select score from oura.daily_sleep where id = 'sleep-refill'`);
    assert.equal(Number(rows[0]!.score), 70);
    assert.deepEqual((await feedOf(user, start, count(2))).map(brief), [
      'document create daily_sleep sleep-refill 2026-12-02',
      'document update daily_sleep sleep-refill 2026-12-02',
    ]);
  });

  test('a batch of samples is one change spanning the samples that are new or changed; the same batch again is none', async () => {
    const user = await newUser();
    const start = await feedEnd(db);
    const samples = [0, 1, 2, 3].map((i) => ({ timestamp: `2026-12-01T10:0${i}:00Z`, bpm: 60 + i, source: 'awake' }));
    await series.upsert('heartrate', user, samples);
    await series.upsert('heartrate', user, samples);
    await series.upsert('heartrate', user, samples.map((s, i) => (i === 2 ? { ...s, bpm: 99 } : s)));
    await series.upsert('ring_battery_level', user, [{ timestamp: '2026-12-01T10:00:00Z', level: 80, charging: false, in_charger: false }]);
    await series.upsert('ring_battery_level', user, [{ timestamp: '2026-12-01T10:00:00Z', level: 80, charging: true, in_charger: false }]);
    const changes = await feedOf(user, start, count(4));
    assert.deepEqual(changes.map(brief), [
      'timeseries update heartrate 2026-12-01T10:00:00.000Z 2026-12-01T10:03:00.000Z',
      'timeseries update heartrate 2026-12-01T10:02:00.000Z 2026-12-01T10:02:00.000Z',
      'timeseries update ring_battery_level 2026-12-01T10:00:00.000Z 2026-12-01T10:00:00.000Z',
      'timeseries update ring_battery_level 2026-12-01T10:00:00.000Z 2026-12-01T10:00:00.000Z',
    ]);
  });

  test("a user's connection, reauth_required (once) and finished backfill are changes", async () => {
    const start = await feedEnd(db);
    const user = 'user-life';
    const tokens = { accessTokenEnc: 'a', refreshTokenEnc: 'r', expiresAt: null, scopes: null };
    await users.upsertConnected({ id: user, personalInfo: {}, ...tokens });
    await users.setStatus(user, 'reauth_required', 'refresh refused');
    await users.setStatus(user, 'reauth_required', 'refresh refused again');
    const backfill = createBackfillRepo(db);
    const range = { rangeStart: new Date('2026-11-01'), rangeEnd: new Date('2026-11-03'), windowsTotal: 1 };
    for (const dataType of ['tag', 'workout']) await backfill.start({ userId: user, dataType, ...range });
    const finish = (dataType: string) =>
      backfill.completeWindow(user, dataType, range.rangeStart, { cursor: range.rangeEnd, items: 0, requests: 1, done: true }, async () => {});
    assert.equal(await finish('tag'), true);
    assert.deepEqual((await feedOf(user, start, count(2))).map(brief), ['user connected', 'user reauth_required'], 'one of two types loaded: not complete');
    assert.equal(await finish('workout'), true);
    await users.upsertConnected({ id: user, personalInfo: {}, ...tokens });
    const changes = await feedOf(user, start, count(4));
    assert.deepEqual(changes.map(brief), ['user connected', 'user reauth_required', 'user backfill_completed', 'user connected']);
  });

  test('a change commits with its data: a rolled-back write leaves neither', async () => {
    const user = await newUser();
    const start = await feedEnd(db);
    await assert.rejects(
      db.transaction(async (tx) => {
        await createDocumentsRepo(tx as unknown as Db).upsert('tag', user, [{ id: 'tag-rolled-back', day: '2026-12-01' }]);
        throw new Error('the caller fails after the write');
      }),
      /the caller fails/,
    );
    await documents.upsert('tag', user, [{ id: 'tag-after', day: '2026-12-01' }]);
    assert.deepEqual((await feedOf(user, start, count(1))).map((c) => c.object_id), ['tag-after'], 'only the write that committed');
    assert.equal((await pool.query(`select 1 from oura.tag where id = 'tag-rolled-back'`)).rowCount, 0);
  });

  test('NOTIFY oura_changes follows each commit that wrote a change, and only those', async () => {
    const user = await newUser();
    const listener = await pool.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.channel));
    try {
      await listener.query('listen oura_changes');
      await documents.upsert('tag', user, [{ id: 'tag-notify', day: '2026-12-01', text: 'a' }]);
      await documents.upsert('tag', user, [{ id: 'tag-notify', day: '2026-12-01', text: 'a' }]);
      // A round trip on the listening connection delivers what is pending.
      await listener.query('select 1');
      assert.deepEqual(heard, ['oura_changes']);
    } finally {
      listener.release();
    }
  });

  test('a writer that commits late: "after the last seq seen" skips its change, the (txid, seq) cursor waits for it', async () => {
    const start = await feedEnd(db);
    const write = (client: pg.PoolClient, object: string) =>
      client.query<{ seq: string }>(
        `insert into oura.changes (user_id, kind, op, data_type, object_id) values ('late', 'document', 'create', 'tag', $1) returning seq`,
        [object],
      );
    const slow = await pool.connect();
    const quick = await pool.connect();
    try {
      await slow.query('begin');
      const slowSeq = Number((await write(slow, 'slow')).rows[0]!.seq);
      await quick.query('begin');
      const quickSeq = Number((await write(quick, 'quick')).rows[0]!.seq);
      await quick.query('commit');
      assert.ok(quickSeq > slowSeq);

      // A naive reader sees the quick change and moves past both sequence values...
      const naive = await pool.query<{ seq: string }>(`select seq from oura.changes where user_id = 'late' order by seq`);
      assert.deepEqual(naive.rows.map((r) => Number(r.seq)), [quickSeq]);
      // ...while the cursor shows neither until the slow writer ends.
      assert.deepEqual((await drain(start)).changes.filter((c) => c.user_id === 'late'), []);

      await slow.query('commit');
      const missed = await pool.query(`select seq from oura.changes where user_id = 'late' and seq > $1`, [quickSeq]);
      assert.equal(missed.rowCount, 0, 'after the last seq seen, nothing: the slow change is skipped');
      const changes = await feedOf('late', start, count(2));
      assert.deepEqual(changes.map((c) => c.object_id), ['slow', 'quick']);
    } finally {
      await slow.query('rollback').catch(() => {});
      slow.release();
      quick.release();
    }
  });

  test('concurrent writers: a reader following the cursor gets every change once, and each document in the order it changed', async () => {
    const owners = [await newUser(), await newUser(), await newUser()];
    const start = await feedEnd(db);
    const idsOf = (user: string) => Array.from({ length: 6 }, (_, i) => `${user}-tag-${i}`);
    const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!;

    // Writers: the repositories' own upserts and deletes of overlapping batches, in any order...
    const writer = async () => {
      for (let i = 0; i < 30; i++) {
        const user = pick(owners);
        const ids = idsOf(user).filter(() => Math.random() < 0.5);
        if (ids.length === 0) continue;
        if (Math.random() < 0.3) await documents.removeMany('tag', user, ids);
        else await documents.upsert('tag', user, ids.sort(() => Math.random() - 0.5).map((id) => ({ id, day: '2026-12-01', text: `v${Math.random()}` })));
      }
    };
    // ...and transactions that hold their id for a while before they commit.
    const straggler = async () => {
      for (let i = 0; i < 15; i++) {
        const client = await pool.connect();
        try {
          await client.query('begin');
          await client.query(`insert into oura.changes (user_id, kind, op) values ('straggler', 'user', 'connected')`);
          await client.query(`select pg_sleep(${(Math.random() * 0.03).toFixed(3)})`);
          await client.query(`insert into oura.changes (user_id, kind, op) values ('straggler', 'user', 'connected')`);
          await client.query('commit');
        } finally {
          client.release();
        }
      }
    };
    const seen: Change[] = [];
    let total: number | null = null;
    const reader = (async () => {
      let cursor = start;
      const deadline = Date.now() + 60_000;
      while ((total === null || seen.length < total) && Date.now() < deadline) {
        const got = await drain(cursor);
        seen.push(...got.changes.filter((c) => owners.includes(c.user_id) || c.user_id === 'straggler'));
        cursor = got.cursor;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await Promise.all([writer(), writer(), writer(), writer(), straggler(), straggler()]);
    const written = await pool.query<{ seq: string }>(
      `select seq from oura.changes where (txid, seq) > ($1::xid8, $2) and (user_id = any($3) or user_id = 'straggler') order by seq`,
      [start.txid, start.seq, owners],
    );
    total = written.rows.length;
    await reader;

    const seenSeqs = seen.map((c) => c.seq);
    assert.equal(new Set(seenSeqs).size, seenSeqs.length, 'no change twice');
    assert.deepEqual([...seenSeqs].sort((a, b) => a - b), written.rows.map((r) => Number(r.seq)), 'every change written was read');
    assert.ok(seen.length > 100, `${seen.length} changes`);

    // Replaying the feed rebuilds the table: a create only for an absent document, an update or delete only for a present one.
    const present = new Set<string>();
    for (const c of seen.filter((x) => x.kind === 'document')) {
      const key = c.object_id!;
      if (c.op === 'create') assert.ok(!present.has(key), `${key} created while present (seq ${c.seq})`);
      else assert.ok(present.has(key), `${key} ${c.op}d while absent (seq ${c.seq})`);
      if (c.op === 'delete') present.delete(key);
      else present.add(key);
    }
    const stored = await pool.query<{ id: string }>(`select id from oura.tag where user_id = any($1) order by id`, [owners]);
    assert.deepEqual([...present].sort(), stored.rows.map((r) => r.id));
  });

  test('the hourly retention task deletes changes and finished outbound messages older than CHANGES_RETENTION_DAYS, never a pending one', async () => {
    const user = await newUser();
    await documents.upsert('tag', user, [{ id: 'tag-old', day: '2026-12-01' }]);
    await pool.query(`update oura.changes set changed_at = now() - interval '31 days' where object_id = 'tag-old'`);
    const start = await feedEnd(db);
    await documents.upsert('tag', user, [{ id: 'tag-new', day: '2026-12-01' }]);
    const message = (seq: number, status: string, finishedDaysAgo: number | null) =>
      pool.query(
        `insert into oura.partner_webhook_deliveries (seq, user_id, event_type, data, occurred_at, status, finished_at)
         values ($1, $2, 'document.created', '{}', now() - interval '40 days', $3, now() - make_interval(days => $4::int))`,
        [seq, user, status, finishedDaysAgo],
      );
    await message(9_000_001, 'delivered', 31);
    await message(9_000_002, 'dead', 31);
    await message(9_000_003, 'pending', null);
    await message(9_000_004, 'delivered', 29);

    const logged: unknown[] = [];
    const log = { info: (o: unknown) => logged.push(o) } as unknown as Deps['log'];
    const deps = { config: { CHANGES_RETENTION_DAYS: 30 }, db, partnerWebhooks: createPartnerWebhooksRepo(db) } as unknown as Deps;
    assert.deepEqual(await changesRetentionTask.run(deps, log), { changes: 1, messages: 2 });
    assert.equal((await pool.query(`select 1 from oura.changes where object_id = 'tag-old'`)).rowCount, 0);
    assert.deepEqual((await feedOf(user, start, count(1))).map((c) => c.object_id), ['tag-new'], 'the rest of the feed reads on');
    const kept = await pool.query<{ seq: string }>(`select seq from oura.partner_webhook_deliveries where user_id = $1 order by seq`, [user]);
    assert.deepEqual(kept.rows.map((r) => Number(r.seq)), [9_000_003, 9_000_004], 'the pending one, however old, and the recent one');
    assert.deepEqual(await changesRetentionTask.run(deps, log), { changes: 0, messages: 0 }, 'nothing more the next hour');
    assert.equal(logged.length, 1, 'one line for the run that deleted');
  });
});
