import { sql } from 'drizzle-orm';
import { feedEnd, readChanges, type Change, type ChangeCursor } from './changes.js';
import type { Db } from './index.js';
import { partnerWebhookDeliveries } from './schema/core.js';

/**
 * The outbound webhooks' bookkeeping (README, "Outbound webhooks"):
 * oura.partner_webhook_cursor, how far the change feed has been turned into
 * messages, and oura.partner_webhook_deliveries, one message per change with
 * its delivery state.
 *
 * Order per user. A user's changes come in seq order (src/db/changes.ts), and
 * the fan-out inserts them in feed order, so once a message of a user exists,
 * every earlier change of that user has its message too. A message is sent
 * only while it is its user's oldest pending one and no other of the user's
 * is in flight: one at a time per user, in seq order, however many senders
 * run. A dead message no longer holds the user's later ones back.
 */

/** A message as stored: what the sender needs to send it. */
export interface PartnerMessage {
  seq: number;
  user_id: string;
  event_type: string;
  data: Record<string, unknown>;
  occurred_at: Date;
  /** Attempts made, this one included. */
  attempts: number;
}

/** A dead letter as the admin API and CLI show it: ids and the failure, never documents. */
export interface DeadMessage {
  seq: number;
  webhook_id: string;
  user_id: string;
  event_type: string;
  data: Record<string, unknown>;
  occurred_at: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  finished_at: string | null;
}

export interface PartnerWebhookStats {
  pending: number;
  oldestPendingS: number | null;
  dead: number;
}

/** The message a change becomes: its type and data (ids only; the document is read when sending). */
export function messageOf(c: Change): { event_type: string; data: Record<string, unknown> } {
  switch (c.kind) {
    case 'document':
      return {
        event_type: `document.${c.op === 'create' ? 'created' : c.op === 'update' ? 'updated' : 'deleted'}`,
        data: { user_id: c.user_id, data_type: c.data_type, object_id: c.object_id, day: c.day },
      };
    case 'timeseries':
      return { event_type: 'timeseries.updated', data: { user_id: c.user_id, data_type: c.data_type, start: c.range_start, end: c.range_end } };
    case 'user':
      return { event_type: `user.${c.op}`, data: { user_id: c.user_id } };
  }
}

export const webhookIdOf = (seq: number) => `msg_${seq}`;

/** The lock class of pg_advisory_xact_lock that serialises claims. */
const CLAIM_LOCK = 726871003;

export function createPartnerWebhooksRepo(db: Db) {
  return {
    /**
     * Makes sure the cursor exists: when it does not (outbound webhooks just
     * turned on), it starts at the end of the feed, so history is not sent.
     * Returns where it is.
     */
    async ensureCursor(): Promise<ChangeCursor> {
      const end = await feedEnd(db);
      await db.execute(sql`
        insert into oura.partner_webhook_cursor (id, txid, seq) values (1, ${end.txid}::xid8, ${end.seq})
        on conflict (id) do nothing`);
      const { rows } = await db.execute<{ txid: string; seq: string }>(sql`select txid::text as txid, seq from oura.partner_webhook_cursor where id = 1`);
      return { txid: rows[0]!.txid, seq: Number(rows[0]!.seq) };
    },

    /**
     * Turns up to `limit` changes after the cursor into messages and moves the
     * cursor past them, in one transaction: both or neither. Another sender
     * doing the same meanwhile makes this one return 0 at once (the cursor row
     * is locked with skip locked). Returns how many changes were read.
     */
    async fanOut(limit: number): Promise<number> {
      return db.transaction(async (t) => {
        const tx = t as unknown as Db;
        const { rows } = await tx.execute<{ txid: string; seq: string }>(sql`
          select txid::text as txid, seq from oura.partner_webhook_cursor where id = 1 for update skip locked`);
        const at = rows[0];
        if (!at) return 0;
        const list = await readChanges(tx, { txid: at.txid, seq: Number(at.seq) }, limit);
        if (list.length === 0) return 0;
        await tx
          .insert(partnerWebhookDeliveries)
          .values(list.map((c) => ({ seq: c.seq, user_id: c.user_id, ...messageOf(c), occurred_at: c.changed_at })))
          .onConflictDoNothing();
        const last = list[list.length - 1]!;
        await tx.execute(sql`update oura.partner_webhook_cursor set txid = ${last.txid}::xid8, seq = ${last.seq}, updated_at = now() where id = 1`);
        return list.length;
      });
    },

    /**
     * Claims up to `limit` messages to send now, each its user's oldest
     * pending one, due, with none of the user's in flight; each is held for
     * `holdMs` (a sender that dies mid-send leaves it to be claimed again
     * then) and counts one attempt more.
     *
     * The heads of line are found with a loose index scan of the pending
     * index (one probe per user with pending messages), not by reading every
     * pending message: a partner down for a day leaves many messages per
     * user, of which only the first can go.
     */
    async claim(limit: number, holdMs: number): Promise<PartnerMessage[]> {
      // One claim at a time across senders, each seeing the one before committed: two claims
      // whose snapshots straddle a replay could otherwise each take a message of the same user.
      const rows = await db.transaction(async (t) => {
        const tx = t as unknown as Db;
        await tx.execute(sql`select pg_advisory_xact_lock(${CLAIM_LOCK})`);
        return (await tx.execute<Record<string, unknown>>(sql`
        with recursive heads(user_id, seq) as (
          (select user_id, seq from oura.partner_webhook_deliveries where status = 'pending' order by user_id, seq limit 1)
          union all
          select n.user_id, n.seq from heads h cross join lateral (
            select user_id, seq from oura.partner_webhook_deliveries
            where status = 'pending' and user_id > h.user_id order by user_id, seq limit 1) n
        ),
        due as (
          select d.seq from heads h join oura.partner_webhook_deliveries d on d.seq = h.seq
          where d.status = 'pending' and d.next_attempt_at <= now() and (d.locked_until is null or d.locked_until < now())
            and not exists (
              select 1 from oura.partner_webhook_deliveries o
              where o.status = 'pending' and o.user_id = d.user_id and o.seq <> d.seq and o.locked_until > now())
          order by d.next_attempt_at, d.seq
          limit ${limit}
          for update of d skip locked
        )
        update oura.partner_webhook_deliveries d
        set locked_until = now() + ${holdMs} * interval '1 millisecond', attempts = d.attempts + 1
        from due where d.seq = due.seq
        returning d.seq, d.user_id, d.event_type, d.data, d.occurred_at, d.attempts`)).rows;
      });
      return rows
        .map((r) => ({
          seq: Number(r.seq),
          user_id: r.user_id as string,
          event_type: r.event_type as string,
          data: r.data as Record<string, unknown>,
          occurred_at: new Date(r.occurred_at as string | Date),
          attempts: Number(r.attempts),
        }))
        .sort((a, b) => a.seq - b.seq);
    },

    /** The partner answered 2xx. */
    async delivered(seq: number, status: number): Promise<void> {
      await db.execute(sql`
        update oura.partner_webhook_deliveries
        set status = 'delivered', last_status = ${status}, last_error = null, locked_until = null, finished_at = now()
        where seq = ${seq} and status = 'pending'`);
    },

    /**
     * The attempt failed: due again after `retryInMs`, or dead when null.
     * Only the attempt that holds the message records it (one that took
     * longer than its hold and was claimed again meanwhile does not).
     */
    async failed(seq: number, attempts: number, outcome: { status: number | null; error: string; retryInMs: number | null }): Promise<void> {
      const dead = outcome.retryInMs === null;
      await db.execute(sql`
        update oura.partner_webhook_deliveries
        set last_status = ${outcome.status}, last_error = ${outcome.error.slice(0, 500)}, locked_until = null,
          status = ${dead ? 'dead' : 'pending'},
          finished_at = ${dead ? sql`now()` : sql`null`},
          next_attempt_at = ${dead ? sql`next_attempt_at` : sql`now() + ${outcome.retryInMs ?? 0} * interval '1 millisecond'`}
        where seq = ${seq} and status = 'pending' and attempts = ${attempts}`);
    },

    /** Dead letters, oldest first; of one user when `userId` is given. */
    async listDead(input: { limit: number; userId?: string }): Promise<{ total: number; dead: DeadMessage[] }> {
      const byUser = input.userId === undefined ? sql`` : sql`and user_id = ${input.userId}`;
      const [count, list] = await Promise.all([
        db.execute<{ n: number }>(sql`select count(*)::int as n from oura.partner_webhook_deliveries where status = 'dead' ${byUser}`),
        db.execute<Record<string, unknown>>(sql`
          select seq, user_id, event_type, data, occurred_at, attempts, last_status, last_error, finished_at
          from oura.partner_webhook_deliveries where status = 'dead' ${byUser}
          order by seq limit ${input.limit}`),
      ]);
      const iso = (v: unknown) => (v === null ? null : new Date(v as string | Date).toISOString());
      return {
        total: count.rows[0]!.n,
        dead: list.rows.map((r) => ({
          seq: Number(r.seq),
          webhook_id: webhookIdOf(Number(r.seq)),
          user_id: r.user_id as string,
          event_type: r.event_type as string,
          data: r.data as Record<string, unknown>,
          occurred_at: iso(r.occurred_at)!,
          attempts: Number(r.attempts),
          last_status: r.last_status === null ? null : Number(r.last_status),
          last_error: r.last_error as string | null,
          finished_at: iso(r.finished_at),
        })),
      };
    },

    /** The given seqs that are not dead letters (unknown, pending or delivered). */
    async notDead(seqs: number[]): Promise<number[]> {
      if (seqs.length === 0) return [];
      const { rows } = await db.execute<{ seq: string }>(sql`
        select seq from oura.partner_webhook_deliveries
        where seq = any(${`{${seqs.join(',')}}`}::bigint[]) and status = 'dead'`);
      const dead = new Set(rows.map((r) => Number(r.seq)));
      return seqs.filter((s) => !dead.has(s));
    },

    /** Dead letters back to pending, due now with fresh attempts: the given seqs, or all of them. Returns how many. */
    async replay(seqs: number[] | 'all'): Promise<number> {
      const which = seqs === 'all' ? sql`` : sql`and seq = any(${`{${seqs.join(',')}}`}::bigint[])`;
      const r = await db.execute(sql`
        update oura.partner_webhook_deliveries
        set status = 'pending', attempts = 0, next_attempt_at = now(), locked_until = null, finished_at = null
        where status = 'dead' ${which}`);
      return r.rowCount ?? 0;
    },

    /** Pending messages, the age of the oldest, and dead letters (the metrics). */
    async stats(): Promise<PartnerWebhookStats> {
      const { rows } = await db.execute<{ pending: number; oldest: string | Date | null; dead: number }>(sql`
        select (select count(*)::int from oura.partner_webhook_deliveries where status = 'pending') as pending,
          (select occurred_at from oura.partner_webhook_deliveries where status = 'pending' order by seq limit 1) as oldest,
          (select count(*)::int from oura.partner_webhook_deliveries where status = 'dead') as dead`);
      const r = rows[0]!;
      return { pending: r.pending, oldestPendingS: r.oldest ? Math.max(0, (Date.now() - new Date(r.oldest).getTime()) / 1000) : null, dead: r.dead };
    },

    /** Deletes up to `batch` messages delivered or dead before `before`; returns how many. */
    async pruneFinished(before: Date, batch: number): Promise<number> {
      const r = await db.execute(sql`
        delete from oura.partner_webhook_deliveries where seq in (
          select seq from oura.partner_webhook_deliveries
          where status <> 'pending' and finished_at < ${before.toISOString()}::timestamptz limit ${batch})`);
      return r.rowCount ?? 0;
    },
  };
}
export type PartnerWebhooksRepo = ReturnType<typeof createPartnerWebhooksRepo>;
