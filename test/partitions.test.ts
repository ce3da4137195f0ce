import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import { withDatabase } from '../dev/services.js';
import { createDb, createPool } from '../src/db/index.js';
import { migrationsFolder } from '../src/db/migrate.js';
import { dropExpiredPartitions, ensurePartitions, monthStart, partitionName, prepareSeriesPartitions } from '../src/db/partitions.js';
import { getServices } from './helpers/env.js';

/**
 * The time series partitioned by month: a database as the migrations alone
 * leave it (plain tables, as every installation had them) is converted with
 * its rows, while writes go on; queries by user and time prune to their
 * months; retention drops whole partitions.
 */
describe('time series partitioned by month (real Postgres)', () => {
  let admin: string;
  let name: string;
  let pool: pg.Pool;
  before(async () => {
    admin = (await getServices()).adminDatabaseUrl;
    name = `oura_partitions_${randomBytes(4).toString('hex')}`;
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`create database "${name}"`);
    await c.end();
    pool = createPool({ url: withDatabase(admin, name), max: 6 });
    // The migrations only: the tables as they were before partitioning.
    await migrate(createDb(pool), { migrationsFolder: migrationsFolder(), migrationsSchema: 'drizzle' });
  });
  after(async () => {
    await pool.end();
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    await c.query(`drop database if exists "${name}" with (force)`);
    await c.end();
  });

  const relkind = async (table: string) =>
    (await pool.query<{ relkind: string }>(`select relkind from pg_class where oid = $1::regclass`, [`oura.${table}`])).rows[0]!.relkind;

  test('converting keeps every row and lets writes go on meanwhile', async (t) => {
    await pool.query(`insert into oura.users (id) values ('u1'), ('u2')`);
    // 400 000 heart-rate samples of two users over the last 70 days, and battery levels.
    await pool.query(`
      insert into oura.heartrate (user_id, "timestamp", bpm, source)
      select case when i % 2 = 0 then 'u1' else 'u2' end, now() - make_interval(secs => i * 15), 60 + i % 40, 'awake'
      from generate_series(1, 400000) i`);
    await pool.query(`
      insert into oura.ring_battery_level (user_id, "timestamp", level)
      select 'u1', now() - make_interval(secs => i * 300), i % 100 from generate_series(1, 20000) i`);
    assert.equal(await relkind('heartrate'), 'r');

    // Writers keep writing during the conversion; none may wait long for a lock.
    let writing = true;
    let written = 0;
    let slowest = 0;
    const writer = (async () => {
      const c = await pool.connect();
      try {
        await c.query(`set lock_timeout = '3s'`);
        for (let i = 0; writing; i++) {
          const t = Date.now();
          await c.query(`insert into oura.heartrate (user_id, "timestamp", bpm, source) values ('u1', now() - make_interval(secs => $1::int), 70, 'live')`, [i]);
          slowest = Math.max(slowest, Date.now() - t);
          written++;
          await new Promise((r) => setTimeout(r, 10));
        }
      } finally {
        c.release();
      }
    })();
    const started = Date.now();
    const result = await prepareSeriesPartitions(pool);
    const took = Date.now() - started;
    writing = false;
    await writer;

    t.diagnostic(`conversion ${took} ms, ${written} writes meanwhile, slowest ${slowest} ms`);
    assert.deepEqual(result.converted, ["heartrate", "ring_battery_level"]);
    assert.equal(await relkind('heartrate'), 'p');
    assert.equal(await relkind('ring_battery_level'), 'p');
    const count = async (t: string) => Number((await pool.query(`select count(*) from oura.${t}`)).rows[0].count);
    assert.equal(await count('heartrate'), 400_000 + written, 'every row kept, and every write made meanwhile');
    assert.equal(await count('ring_battery_level'), 20_000);
    assert.ok(written > 10, `writes went on during the ${took} ms conversion: ${written}`);
    assert.ok(slowest < 1000, `no write waited long for a lock: slowest ${slowest} ms`);

    // The keys hold as before: an upsert replaces, a deleted user's samples go with them.
    await pool.query(`
      insert into oura.heartrate (user_id, "timestamp", bpm, source) select user_id, "timestamp", 99, source from oura.heartrate where user_id = 'u2' limit 1
      on conflict (user_id, "timestamp", source) do update set bpm = excluded.bpm`);
    assert.equal(await count('heartrate'), 400_000 + written);
    await pool.query(`delete from oura.users where id = 'u2'`);
    assert.equal(await count('heartrate'), 200_000 + written);
    // Converting again changes nothing.
    assert.deepEqual((await prepareSeriesPartitions(pool)).converted, []);
  });

  test("a query by user and time range reads only its months' partitions", async () => {
    await ensurePartitions(pool);
    const month = monthStart(new Date(), 3);
    await pool.query(
      `insert into oura.heartrate (user_id, "timestamp", bpm, source) select 'u1', $1::timestamptz + make_interval(mins => i), 65, 'awake' from generate_series(1, 500) i`,
      [month.toISOString()],
    );
    await pool.query('analyze oura.heartrate');
    const { rows } = await pool.query<{ 'QUERY PLAN': string }>(
      `explain select * from oura.heartrate where user_id = 'u1' and "timestamp" >= $1::timestamptz and "timestamp" < $2::timestamptz`,
      [new Date(month.getTime() + 3_600_000).toISOString(), new Date(month.getTime() + 7_200_000).toISOString()],
    );
    const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
    assert.match(plan, new RegExp(partitionName('heartrate', month)), plan);
    assert.doesNotMatch(plan, /heartrate_before_partitioning/, `the older partition is pruned:\n${plan}`);
    assert.doesNotMatch(plan, new RegExp(partitionName('heartrate', monthStart(new Date(), 2))), `the other months are pruned:\n${plan}`);
  });

  test('retention drops whole partitions past it and leaves the rest', async () => {
    const now = new Date();
    const m3 = monthStart(now, 3);
    const before = Number((await pool.query(`select count(*) from oura.heartrate where "timestamp" >= $1`, [m3.toISOString()])).rows[0].count);
    assert.ok(before >= 500);
    // Ten days into the month after next-but-three, with 30 days kept: every partition ending by then goes.
    const later = new Date(monthStart(now, 4).getTime() + 10 * 86_400_000);
    const dropped = await dropExpiredPartitions(pool, 30, later);
    assert.ok(dropped.includes('heartrate_before_partitioning'), dropped.join(', '));
    assert.ok(dropped.includes(partitionName('heartrate', monthStart(now, 2))), dropped.join(', '));
    assert.ok(!dropped.includes(partitionName('heartrate', m3)), 'the month not yet wholly past stays');
    assert.equal(Number((await pool.query(`select count(*) from oura.heartrate`)).rows[0].count), before, 'only the rows of that month are left');
  });
});
