import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { lockUserChanges, recordChanges } from './changes.js';
import type { Db } from './index.js';
import { users, webhookEvents } from './schema/core.js';

/** Postgres errors worth one more try of a short transaction: deadlock, serialization failure. */
const RETRYABLE_PG_CODES = new Set(['40P01', '40001']);

export interface DeletedUser {
  /** Rows removed, the user's own row included. */
  rows: number;
  /** Deleted events that may still have a job in the queue (status queued or failed). */
  openEventIds: number[];
}

/**
 * Queries of the admin API and CLI. Only safe columns leave here: never tokens
 * or personal_info.
 */
export function createAdminRepo(db: Db) {
  /** Every base table of schema `oura` with a user_id column, except oura.users. */
  async function tablesWithUserId(tx: Pick<Db, 'execute'>): Promise<string[]> {
    const r = await tx.execute<{ table_name: string }>(sql`
      select c.table_name
      from information_schema.columns c
      join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
      where c.table_schema = 'oura' and c.column_name = 'user_id' and t.table_type = 'BASE TABLE'
        and c.table_name not in ('users', 'webhook_events', 'webhook_inbox')
      order by c.table_name`);
    return r.rows.map((row) => row.table_name);
  }

  return {
    async listUsers() {
      return db
        .select({
          id: users.id,
          status: users.status,
          status_reason: users.status_reason,
          connected_at: users.connected_at,
          last_webhook_at: users.last_webhook_at,
          last_fetch_at: users.last_fetch_at,
          access_error: users.access_error,
        })
        .from(users)
        .orderBy(asc(users.connected_at), asc(users.id));
    },

    /**
     * Deletes a user and every row of theirs in schema `oura`, in one
     * transaction: the user row is locked first. A delivery arriving meanwhile
     * or later is recorded; the worker then finds no user and marks it ignored
     * (user_unknown). Tables with a
     * user_id column are found in the catalog, so a table added later is
     * covered too; oura.webhook_inbox and oura.webhook_events have no
     * foreign key and are deleted explicitly, in that order. The user's
     * deliveries still in the inbox go with the rest: they were answered,
     * but their data is what the user asked to delete. Returns null when the
     * user does not exist.
     */
    async deleteUser(userId: string): Promise<DeletedUser | null> {
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction(async (tx) => {
            // Before the first write: this transaction records a change (see src/db/changes.ts).
            await lockUserChanges(tx as unknown as Db, userId);
            const locked = await tx.execute(sql`select id from oura.users where id = ${userId} for update`);
            if (locked.rows.length === 0) return null;
            let rows = 0;
            // The inbox first, as an admission locks it before webhook_events: an
            // admission of this user's deliveries either finishes first (and its
            // events are deleted below) or finds them gone; the two cannot deadlock.
            const inbox = await tx.execute(sql`delete from oura.webhook_inbox where user_id = ${userId}`);
            rows += inbox.rowCount ?? 0;
            const events = await tx.execute<{ id: string; status: string }>(sql`
              delete from oura.webhook_events where user_id = ${userId} returning id, status`);
            rows += events.rows.length;
            for (const table of await tablesWithUserId(tx)) {
              const r = await tx.execute(sql`delete from ${sql.identifier('oura')}.${sql.identifier(table)} where user_id = ${userId}`);
              rows += r.rowCount ?? 0;
            }
            const u = await tx.execute(sql`delete from oura.users where id = ${userId}`);
            rows += u.rowCount ?? 0;
            // One change, not a delete per document: see "For partners" in the README.
            await recordChanges(tx as unknown as Db, userId, [{ kind: 'user', op: 'disconnected' }]);
            const openEventIds = events.rows.filter((e) => e.status === 'queued' || e.status === 'failed').map((e) => Number(e.id));
            return { rows, openEventIds };
          });
        } catch (err) {
          const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
          if (attempt >= 3 || !code || !RETRYABLE_PG_CODES.has(code)) throw err;
        }
      }
    },

    /** What the dead-letter view shows of each event: never documents. */
    async eventsByIds(ids: number[]) {
      if (ids.length === 0) return [];
      return db
        .select({
          id: webhookEvents.id,
          event_type: webhookEvents.event_type,
          data_type: webhookEvents.data_type,
          user_id: webhookEvents.user_id,
          object_id: webhookEvents.object_id,
          status: webhookEvents.status,
          outcome: webhookEvents.outcome,
        })
        .from(webhookEvents)
        .where(inArray(webhookEvents.id, ids));
    },

    /** Puts events back to `queued` so a replayed job processes them again. Returns the ids changed. */
    async requeueEvents(ids: number[]): Promise<number[]> {
      if (ids.length === 0) return [];
      const rows = await db
        .update(webhookEvents)
        .set({ status: 'queued', outcome: null, processed_at: null })
        .where(inArray(webhookEvents.id, ids))
        .returning({ id: webhookEvents.id });
      return rows.map((r) => r.id);
    },

    /** Undoes requeueEvents for events whose job could not be replayed (only rows still queued change). */
    async markFailed(ids: number[], outcome: string): Promise<void> {
      if (ids.length === 0) return;
      await db
        .update(webhookEvents)
        .set({ status: 'failed', outcome, processed_at: new Date() })
        .where(and(inArray(webhookEvents.id, ids), eq(webhookEvents.status, 'queued')));
    },
  };
}
export type AdminRepo = ReturnType<typeof createAdminRepo>;
