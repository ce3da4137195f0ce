/**
 * `npm run bench:series`: what the time series cost in Postgres, per sample
 * and per user-day, and what 100 000 users need over a year.
 *
 * It fills a fresh database (migrated and partitioned as the service runs it)
 * with `--users` users × `--days` days of heart rate at one sample per
 * `--hr-interval-s` seconds (Oura reports every 5 minutes through the day;
 * workouts add more) and ring battery at one per `--battery-interval-s`, then
 * reads the tables' and indexes' sizes (pg_table_size, pg_indexes_size) after
 * VACUUM ANALYZE. It also times a query by user and time range, which prunes
 * to one month's partition.
 *
 *   npm run bench:series -- [--users 200] [--days 30] [--hr-interval-s 300] [--battery-interval-s 900]
 */
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { getServices, withDatabase } from '../dev/services.js';
import { createPool } from '../src/db/index.js';
import { runMigrations } from '../src/db/migrate.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '200' },
    days: { type: 'string', default: '30' },
    'hr-interval-s': { type: 'string', default: '300' },
    'battery-interval-s': { type: 'string', default: '900' },
  },
});
const users = Number(values.users);
const days = Number(values.days);
const hrEvery = Number(values['hr-interval-s']);
const batteryEvery = Number(values['battery-interval-s']);

const log = (s: string) => process.stderr.write(`[bench:series ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const admin = (await getServices()).adminDatabaseUrl;
const name = `oura_bench_series_${randomBytes(4).toString('hex')}`;
const c = new pg.Client({ connectionString: admin });
await c.connect();
await c.query(`create database "${name}"`);
await c.end();
const pool = createPool({ url: withDatabase(admin, name), max: 4 });
try {
  await runMigrations(pool);
  await pool.query(`insert into oura.users (id) select 'user-' || i from generate_series(1, ${users}) i`);
  const start = Date.now();
  log(`inserting ${users} users × ${days} days`);
  // One user at a time, in time order, as the service writes them.
  for (let u = 1; u <= users; u++) {
    await pool.query(
      `insert into oura.heartrate (user_id, "timestamp", bpm, source)
       select $1, date_trunc('day', now()) - make_interval(days => ${days}) + make_interval(secs => i * ${hrEvery}), 50 + (i * 7919) % 60,
              case when i % 12 = 0 then 'rest' else 'awake' end
       from generate_series(0, ${Math.floor((days * 86_400) / hrEvery) - 1}) i`,
      [`user-${u}`],
    );
    await pool.query(
      `insert into oura.ring_battery_level (user_id, "timestamp", level, charging, in_charger)
       select $1, date_trunc('day', now()) - make_interval(days => ${days}) + make_interval(secs => i * ${batteryEvery}), 100 - i % 100, i % 100 > 90, i % 100 > 90
       from generate_series(0, ${Math.floor((days * 86_400) / batteryEvery) - 1}) i`,
      [`user-${u}`],
    );
  }
  log(`inserted in ${((Date.now() - start) / 1000).toFixed(1)} s; vacuum analyze`);
  await pool.query('vacuum analyze oura.heartrate');
  await pool.query('vacuum analyze oura.ring_battery_level');

  const size = async (table: string) => {
    const { rows } = await pool.query<{ heap: string; index: string; rows: string; partitions: string }>(
      `select coalesce(sum(pg_table_size(i.inhrelid)), 0) as heap, coalesce(sum(pg_indexes_size(i.inhrelid)), 0) as index,
              (select count(*) from oura.${table}) as rows, count(*) as partitions
       from pg_inherits i where i.inhparent = 'oura.${table}'::regclass`,
    );
    const r = rows[0]!;
    return { heap: Number(r.heap), index: Number(r.index), rows: Number(r.rows), partitions: Number(r.partitions) };
  };
  const hr = await size('heartrate');
  const bat = await size('ring_battery_level');
  const perSample = (s: typeof hr) => ({ heap: s.heap / s.rows, index: s.index / s.rows });
  const userDay = ((hr.heap + hr.index + bat.heap + bat.index) / (users * days));
  const year100k = userDay * 100_000 * 365;

  const t = Date.now();
  const probes = 50;
  for (let i = 0; i < probes; i++) {
    await pool.query(
      `select "timestamp", bpm from oura.heartrate where user_id = $1 and "timestamp" >= now() - interval '2 days' and "timestamp" < now() - interval '1 day'`,
      [`user-${1 + (i % users)}`],
    );
  }
  const queryMs = (Date.now() - t) / probes;
  const { rows: plan } = await pool.query<{ 'QUERY PLAN': string }>(
    `explain select "timestamp", bpm from oura.heartrate where user_id = 'user-1' and "timestamp" >= now() - interval '2 days' and "timestamp" < now() - interval '1 day'`,
  );
  const scanned = new Set(plan.map((p) => /on (heartrate_\w+)/.exec(p['QUERY PLAN'])?.[1]).filter(Boolean));

  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const out = [
    `Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, \`npm run bench:series -- --users ${users} --days ${days} --hr-interval-s ${hrEvery} --battery-interval-s ${batteryEvery}\`.`,
    '',
    `Machine: ${cpus()[0]?.model.trim()}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM; PostgreSQL ${(await pool.query('show server_version')).rows[0].server_version}.`,
    '',
    '| | heart rate | ring battery |',
    '| --- | --- | --- |',
    `| samples (partitions) | ${hr.rows} (${hr.partitions}) | ${bat.rows} (${bat.partitions}) |`,
    `| heap / index | ${mb(hr.heap)} / ${mb(hr.index)} | ${mb(bat.heap)} / ${mb(bat.index)} |`,
    `| bytes per sample: heap + index | ${perSample(hr).heap.toFixed(1)} + ${perSample(hr).index.toFixed(1)} | ${perSample(bat).heap.toFixed(1)} + ${perSample(bat).index.toFixed(1)} |`,
    `| samples per user-day | ${(86_400 / hrEvery).toFixed(0)} | ${(86_400 / batteryEvery).toFixed(0)} |`,
    '',
    `Per user-day, both series, heap and indexes: ${(userDay / 1000).toFixed(1)} kB. 100 000 users for a year: ${(year100k / 1e9).toFixed(0)} GB (${((userDay * 100_000) / 1e9).toFixed(2)} GB a day).`,
    `One user's day of heart rate by user and time range: ${queryMs.toFixed(1)} ms on average over ${probes} queries; the plan reads ${[...scanned].join(', ') || 'no partition named'}.`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  await pool.end();
  const d = new pg.Client({ connectionString: admin });
  await d.connect();
  await d.query(`drop database if exists "${name}" with (force)`);
  await d.end();
}
