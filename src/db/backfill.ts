import { and, eq, sql } from 'drizzle-orm';
import { lockUserChanges, recordChanges } from './changes.js';
import type { Db } from './index.js';
import { backfillProgress } from './schema/core.js';

export type BackfillRow = typeof backfillProgress.$inferSelect;

export function createBackfillRepo(db: Db) {
  return {
    /** Starts (or restarts from scratch) the load of one data type for a user. */
    async start(input: { userId: string; dataType: string; rangeStart: Date; rangeEnd: Date; windowsTotal: number }) {
      const values = {
        user_id: input.userId,
        data_type: input.dataType,
        status: 'running' as const,
        range_start: input.rangeStart,
        range_end: input.rangeEnd,
        cursor: input.rangeStart,
        windows_done: 0,
        windows_total: input.windowsTotal,
        items: 0,
        requests: 0,
        error: null,
        started_at: new Date(),
        updated_at: new Date(),
        finished_at: null,
      };
      await db
        .insert(backfillProgress)
        .values(values)
        .onConflictDoUpdate({ target: [backfillProgress.user_id, backfillProgress.data_type], set: values });
    },

    async get(userId: string, dataType: string): Promise<BackfillRow | null> {
      const rows = await db
        .select()
        .from(backfillProgress)
        .where(and(eq(backfillProgress.user_id, userId), eq(backfillProgress.data_type, dataType)))
        .limit(1);
      return rows[0] ?? null;
    },

    async forUser(userId: string): Promise<BackfillRow[]> {
      return db.select().from(backfillProgress).where(eq(backfillProgress.user_id, userId));
    },

    /** Every user's progress: for the admin listing. */
    async all(): Promise<BackfillRow[]> {
      return db.select().from(backfillProgress);
    },

    async fail(userId: string, dataType: string, error: string): Promise<void> {
      await db
        .update(backfillProgress)
        .set({ status: 'failed', error: error.slice(0, 300), updated_at: new Date() })
        .where(and(eq(backfillProgress.user_id, userId), eq(backfillProgress.data_type, dataType)));
    },

    /**
     * Runs `write` and advances the cursor past one finished window in one
     * transaction: a crash leaves either both or neither.
     */
    async completeWindow(
      userId: string,
      dataType: string,
      expectedCursor: Date,
      next: { cursor: Date; items: number; requests: number; done: boolean },
      write: (tx: Db) => Promise<void>,
    ): Promise<boolean> {
      return db.transaction(async (tx) => {
        // Before the first write: this transaction records changes (see src/db/changes.ts).
        await lockUserChanges(tx as unknown as Db, userId);
        const moved = await tx
          .update(backfillProgress)
          .set({
            cursor: next.cursor,
            windows_done: sql`${backfillProgress.windows_done} + 1`,
            items: sql`${backfillProgress.items} + ${next.items}`,
            requests: sql`${backfillProgress.requests} + ${next.requests}`,
            status: next.done ? 'done' : 'running',
            finished_at: next.done ? new Date() : null,
            updated_at: new Date(),
          })
          .where(
            and(
              eq(backfillProgress.user_id, userId),
              eq(backfillProgress.data_type, dataType),
              eq(backfillProgress.cursor, expectedCursor),
              eq(backfillProgress.status, 'running'),
            ),
          )
          .returning({ user_id: backfillProgress.user_id });
        if (moved.length === 0) return false; // someone else finished this window, or the backfill was restarted
        await write(tx as unknown as Db);
        if (next.done) {
          const open = await tx.execute<{ n: number }>(
            sql`select count(*)::int as n from oura.backfill_progress where user_id = ${userId} and status <> 'done'`,
          );
          if (open.rows[0]?.n === 0) await recordChanges(tx as unknown as Db, userId, [{ kind: 'user', op: 'backfill_completed' }]);
        }
        return true;
      });
    },
  };
}
export type BackfillRepo = ReturnType<typeof createBackfillRepo>;
