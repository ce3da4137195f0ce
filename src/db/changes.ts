import { sql } from 'drizzle-orm';
import type { Db } from './index.js';
import { changes, type ChangeKind, type ChangeOp } from './schema/core.js';

/**
 * The change feed, oura.changes: what partners read to learn what changed.
 *
 * Writing. Every transaction that changes a user's data calls
 * `lockUserChanges` before its first write, records its changes with
 * `recordChanges` and commits them with the data (`withUserChanges` does all
 * three). `pg_notify('oura_changes')` in the same transaction is delivered
 * when it commits.
 *
 * Reading without skipping. A sequence value is taken when a row is written,
 * not when it commits, so a reader that remembers "the last seq I saw" skips
 * a row whose writer commits after a later one's. Each row therefore carries
 * its transaction id (txid), and readers go in (txid, seq) order over the
 * rows below `pg_snapshot_xmin(pg_current_snapshot())`: every transaction
 * with a smaller id has ended, so no row can appear there later, and a
 * cursor (txid, seq) never passes one that will. A long transaction anywhere
 * in the cluster holds the feed back for as long as it runs; nothing is lost.
 *
 * Order per user. The user's lock is taken before the transaction's first
 * write, which is when Postgres gives it its id: the next transaction of the
 * same user gets the lock, and so an id, only after this one committed. So
 * for one user (txid, seq) order is commit order, and a document's changes
 * come in the order they happened.
 */

/** The lock class of pg_advisory_xact_lock(class, key) for users' changes. */
const CHANGE_LOCK_CLASS = 726871002;

export interface ChangeInput {
  kind: ChangeKind;
  op: ChangeOp;
  dataType?: string | null;
  objectId?: string | null;
  day?: string | null;
  rangeStart?: string | null;
  rangeEnd?: string | null;
}

/** A place in the feed: the change last read. */
export interface ChangeCursor {
  txid: string;
  seq: number;
}

export interface Change {
  seq: number;
  txid: string;
  user_id: string;
  kind: ChangeKind;
  data_type: string | null;
  op: ChangeOp;
  object_id: string | null;
  day: string | null;
  range_start: string | null;
  range_end: string | null;
  changed_at: Date;
}

/** Before every change: where a reader starts to get the whole retained feed. */
export const FEED_START: ChangeCursor = { txid: '0', seq: 0 };

/** The cursor as partners pass it around: `<txid>-<seq>`. */
export function formatCursor(c: ChangeCursor): string {
  return `${c.txid}-${c.seq}`;
}

/** Parses `<txid>-<seq>` (or `0`, the feed's start); null when it is not one. */
export function parseCursor(s: string): ChangeCursor | null {
  if (s === '0') return FEED_START;
  const m = /^(\d{1,20})-(\d{1,18})$/.exec(s);
  return m ? { txid: m[1]!, seq: Number(m[2]) } : null;
}

export function cursorOf(c: Pick<Change, 'txid' | 'seq'>): ChangeCursor {
  return { txid: c.txid, seq: c.seq };
}

/** Serialises the user's changing transactions; call before the transaction's first write. */
export async function lockUserChanges(tx: Db, userId: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${CHANGE_LOCK_CLASS}, hashtext(${userId}))`);
}

/** Records changes of one user in the caller's transaction, and notifies listeners when it commits. */
export async function recordChanges(tx: Db, userId: string, list: ChangeInput[]): Promise<void> {
  if (list.length === 0) return;
  await tx.insert(changes).values(
    list.map((c) => ({
      user_id: userId,
      kind: c.kind,
      op: c.op,
      data_type: c.dataType ?? null,
      object_id: c.objectId ?? null,
      day: c.day ?? null,
      range_start: c.rangeStart ?? null,
      range_end: c.rangeEnd ?? null,
    })),
  );
  await tx.execute(sql`select pg_notify('oura_changes', '')`);
}

/**
 * Runs `fn` in a transaction (a savepoint inside the caller's, when `db` is
 * one) holding the user's change lock, and records the changes it returns.
 */
export async function withUserChanges<T>(db: Db, userId: string, fn: (tx: Db) => Promise<{ result: T; changes: ChangeInput[] }>): Promise<T> {
  return db.transaction(async (t) => {
    const tx = t as unknown as Db;
    await lockUserChanges(tx, userId);
    const { result, changes: list } = await fn(tx);
    await recordChanges(tx, userId, list);
    return result;
  });
}

const COLUMNS = sql.raw(`seq, txid::text as txid, user_id, kind, data_type, op, object_id, day::text as day,
  range_start, range_end, changed_at`);

/** Up to `limit` changes after the cursor, in feed order; none that a running transaction could still precede. */
export async function readChanges(db: Db, after: ChangeCursor, limit: number): Promise<Change[]> {
  const { rows } = await db.execute<Record<string, unknown>>(sql`
    select ${COLUMNS} from oura.changes
    where (txid, seq) > (${after.txid}::xid8, ${after.seq}::bigint)
      and txid < pg_snapshot_xmin(pg_current_snapshot())
    order by txid, seq
    limit ${limit}`);
  const iso = (v: unknown) => (v === null ? null : new Date(v as string | Date).toISOString());
  return rows.map((r) => ({
    ...(r as unknown as Change),
    seq: Number(r.seq),
    range_start: iso(r.range_start),
    range_end: iso(r.range_end),
    changed_at: new Date(r.changed_at as string | Date),
  }));
}

/** The cursor past every change readable now: where a reader that wants only new changes starts. */
export async function feedEnd(db: Db): Promise<ChangeCursor> {
  const { rows } = await db.execute<{ txid: string; seq: string }>(sql`
    select txid::text as txid, seq from oura.changes
    where txid < pg_snapshot_xmin(pg_current_snapshot())
    order by txid desc, seq desc
    limit 1`);
  const r = rows[0];
  return r ? { txid: r.txid, seq: Number(r.seq) } : FEED_START;
}

/** Deletes up to `batch` changes written before `before`; returns how many. */
export async function pruneChanges(db: Db, before: Date, batch: number): Promise<number> {
  const result = await db.execute(sql`
    delete from oura.changes where seq in (
      select seq from oura.changes where changed_at < ${before.toISOString()}::timestamptz limit ${batch})`);
  return result.rowCount ?? 0;
}
