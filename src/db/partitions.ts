import type pg from 'pg';
import { inTransaction } from './index.js';

/**
 * The time series (`oura.heartrate`, `oura.ring_battery_level`) are
 * partitioned by month of `timestamp`, so that years of samples stay cheap
 * to query by user and time range (the planner prunes to the months asked
 * for) and old months leave by DROP, never by DELETE.
 *
 * Converting a plain table holds no long lock, however large it is:
 *   1. a CHECK constraint `timestamp < B` (B: the first day of the month after
 *      next; of this month for an empty table, as on a new installation) is
 *      added NOT VALID, in a transaction of its own: a catalog change;
 *   2. it is validated in another: a scan under SHARE UPDATE EXCLUSIVE, which
 *      lets reads and writes go on;
 *   3. one short transaction renames the table, creates the partitioned table
 *      under its name, and attaches the old one as its first partition,
 *      `FROM (MINVALUE) TO (B)`: the valid constraint spares the attach a
 *      scan, and the primary key and foreign key are taken over as they are.
 * Every row stays where it is. Months from B on get partitions of their own,
 * created ahead by the maintenance task; the first partition leaves whole,
 * like any other, once all of it is past TIMESERIES_RETENTION_DAYS.
 *
 * Runs after the migrations (`npm run migrate`), idempotently: a table
 * already partitioned is left alone. See README, "Time series that last years".
 */
export const PARTITIONED_SERIES = ['heartrate', 'ring_battery_level'] as const;
export type PartitionedSeries = (typeof PARTITIONED_SERIES)[number];

/** Months of partitions kept ahead of the current one. */
export const MONTHS_AHEAD = 3;

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** First instant (UTC) of the month `offset` months from the one holding `at`. */
export function monthStart(at: Date, offset = 0): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + offset, 1));
}

/** `heartrate_2026_12` */
export function partitionName(table: PartitionedSeries, month: Date): string {
  return `${table}_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
}

async function isPartitioned(client: pg.PoolClient | pg.Pool, table: string): Promise<boolean | null> {
  const { rows } = await client.query<{ relkind: string }>(
    `select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'oura' and c.relname = $1`,
    [table],
  );
  if (rows.length === 0) return null;
  return rows[0]!.relkind === 'p';
}

/** Converts one plain series table to a partitioned one (see above); returns false when it already was. */
async function partitionTable(pool: pg.Pool, table: PartitionedSeries, now: Date): Promise<boolean> {
  if ((await isPartitioned(pool, table)) !== false) return false;
  // An empty table (a new installation: the migrations run before any
  // service process) starts its monthly partitions with the current month;
  // the first partition then only takes history loaded later. A table with
  // rows keeps them all in its first partition, up to the month after next,
  // so that writes going on meanwhile always fit.
  const empty = (await pool.query(`select not exists (select 1 from oura.${ident(table)}) as empty`)).rows[0].empty as boolean;
  const bound = monthStart(now, empty ? 0 : 2);
  const legacy = `${table}_before_partitioning`;
  const check = `${table}_before_partitioning_range`;
  const q = `oura.${ident(table)}`;
  // 1 and 2: the constraint that lets the attach skip its scan. A leftover of
  // an interrupted run is replaced (its bound may be stale).
  await pool.query(`alter table ${q} drop constraint if exists ${ident(check)}`);
  await pool.query(`alter table ${q} add constraint ${ident(check)} check ("timestamp" < '${bound.toISOString()}') not valid`);
  await pool.query(`alter table ${q} validate constraint ${ident(check)}`);
  // 3: one short transaction.
  return inTransaction(pool, async (client) => {
    await client.query(`set local lock_timeout = '10s'`);
    if ((await isPartitioned(client, table)) !== false) return false;
    const { rows } = await client.query<{ name: string; type: string; def: string }>(
      `select c.conname as name, c.contype as type, pg_get_constraintdef(c.oid) as def
       from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_namespace n on n.oid = t.relnamespace
       where n.nspname = 'oura' and t.relname = $1 and c.contype in ('p', 'f')`,
      [table],
    );
    const pk = rows.find((r) => r.type === 'p');
    if (!pk) throw new Error(`oura.${table} has no primary key`);
    await client.query(`alter table ${q} rename to ${ident(legacy)}`);
    // Index names are per schema: the old table's key gives its name up to the new table's.
    await client.query(`alter table oura.${ident(legacy)} rename constraint ${ident(pk.name)} to ${ident(`${legacy}_pkey`)}`);
    await client.query(`create table ${q} (like oura.${ident(legacy)} including defaults) partition by range ("timestamp")`);
    for (const r of rows) await client.query(`alter table ${q} add constraint ${ident(r.name)} ${r.def}`);
    // Who may read or write it (oura_reader, say) carries over: the grants follow the name.
    const grants = await client.query<{ grantee: string; privilege: string }>(
      `select grantee, privilege_type as privilege from information_schema.role_table_grants
        where table_schema = 'oura' and table_name = $1 and grantee <> current_user`,
      [legacy],
    );
    for (const g of grants.rows) await client.query(`grant ${g.privilege} on ${q} to ${g.grantee === 'PUBLIC' ? 'public' : ident(g.grantee)}`);
    await client.query(`alter table ${q} attach partition oura.${ident(legacy)} for values from (minvalue) to ('${bound.toISOString()}')`);
    await client.query(`alter table oura.${ident(legacy)} drop constraint ${ident(check)}`);
    return true;
  });
}

/**
 * Creates the monthly partitions from the current month to MONTHS_AHEAD
 * ahead where none covers them (the first partition may cover the first
 * months). Idempotent. Returns the partitions created.
 */
export async function ensurePartitions(pool: pg.Pool, now = new Date()): Promise<string[]> {
  const created: string[] = [];
  for (const table of PARTITIONED_SERIES) {
    if (!(await isPartitioned(pool, table))) continue;
    for (let m = 0; m <= MONTHS_AHEAD; m++) {
      const from = monthStart(now, m);
      const name = partitionName(table, from);
      try {
        await pool.query(
          `create table oura.${ident(name)} partition of oura.${ident(table)} for values from ('${from.toISOString()}') to ('${monthStart(now, m + 1).toISOString()}')`,
        );
        created.push(name);
      } catch (err) {
        // 42P07: made already; 42P17: an existing partition (the first one) covers that month.
        const code = (err as { code?: string }).code;
        if (code !== '42P07' && code !== '42P17') throw err;
      }
    }
  }
  return created;
}

/**
 * Drops the partitions wholly older than `retentionDays` (their upper bound
 * is before the cut-off). Never deletes rows. Returns the partitions dropped.
 */
export async function dropExpiredPartitions(pool: pg.Pool, retentionDays: number, now = new Date()): Promise<string[]> {
  const cutoff = new Date(now.getTime() - retentionDays * 86_400_000);
  const dropped: string[] = [];
  for (const table of PARTITIONED_SERIES) {
    if (!(await isPartitioned(pool, table))) continue;
    const { rows } = await pool.query<{ name: string; upper: string | null }>(
      `select c.relname as name, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1] as upper
       from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = $1::regclass`,
      [`oura.${table}`],
    );
    for (const r of rows) {
      if (!r.upper || new Date(r.upper).getTime() > cutoff.getTime()) continue;
      await pool.query(`drop table oura.${ident(r.name)}`);
      dropped.push(r.name);
    }
  }
  return dropped;
}

/** Partitions the time series (where not done yet) and creates the months ahead: run after the migrations. */
export async function prepareSeriesPartitions(pool: pg.Pool, now = new Date()): Promise<{ converted: string[]; created: string[] }> {
  const converted: string[] = [];
  for (const table of PARTITIONED_SERIES) if (await partitionTable(pool, table, now)) converted.push(table);
  const created = await ensurePartitions(pool, now);
  return { converted, created };
}
