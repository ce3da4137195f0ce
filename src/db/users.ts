import { and, eq, sql } from 'drizzle-orm';
import type { Db } from './index.js';
import { users, type UserStatus } from './schema/core.js';

export interface StoredTokens {
  accessTokenEnc: string;
  refreshTokenEnc: string;
  expiresAt: Date | null;
  scopes: string | null;
}

export function createUsersRepo(db: Db) {
  return {
    /** Connects (or reconnects) a user: status active, fresh tokens. */
    async upsertConnected(input: { id: string; personalInfo: unknown } & StoredTokens): Promise<{ reconnected: boolean }> {
      const values = {
        id: input.id,
        status: 'active' as const,
        status_reason: null,
        access_token_enc: input.accessTokenEnc,
        refresh_token_enc: input.refreshTokenEnc,
        token_expires_at: input.expiresAt,
        scopes: input.scopes,
        personal_info: input.personalInfo,
        access_error: null,
        access_error_at: null,
        updated_at: new Date(),
      };
      const rows = await db
        .insert(users)
        .values(values)
        .onConflictDoUpdate({ target: users.id, set: { ...values, connected_at: sql`now()` } })
        .returning({ inserted: sql<boolean>`(xmax = 0)` });
      return { reconnected: !rows[0]?.inserted };
    },

    async get(id: string) {
      const rows = await db.select().from(users).where(eq(users.id, id)).limit(1);
      return rows[0] ?? null;
    },

    async saveTokens(id: string, t: StoredTokens): Promise<void> {
      await db
        .update(users)
        .set({
          access_token_enc: t.accessTokenEnc,
          refresh_token_enc: t.refreshTokenEnc,
          token_expires_at: t.expiresAt,
          scopes: t.scopes,
          updated_at: new Date(),
        })
        .where(eq(users.id, id));
    },

    async setStatus(id: string, status: UserStatus, reason: string | null): Promise<void> {
      await db.update(users).set({ status, status_reason: reason, updated_at: new Date() }).where(eq(users.id, id));
    },

    async touchFetch(id: string): Promise<void> {
      await db.update(users).set({ last_fetch_at: new Date() }).where(eq(users.id, id));
    },

    /** Moves each user's last_webhook_at forward to the time given (never back); unknown ids change nothing. */
    async touchWebhooks(seen: Array<{ id: string; at: Date }>): Promise<void> {
      if (seen.length === 0) return;
      await db.execute(sql`
        update oura.users u set last_webhook_at = v.at
        from json_to_recordset(${JSON.stringify(seen)}::json) as v(id text, at timestamptz)
        where u.id = v.id and (u.last_webhook_at is null or u.last_webhook_at < v.at)`);
    },

    /** Records a refusal retrying cannot fix (403 membership/scope, 426 app too old). */
    async recordAccessError(id: string, reason: string): Promise<void> {
      await db.update(users).set({ access_error: reason, access_error_at: new Date() }).where(eq(users.id, id));
    },

    /**
     * Claims up to `limit` active users due for reconciliation and stamps them.
     * Each user is due once per interval; a user's first time is spread over
     * the interval by a hash of their id, so users are not all re-synced at once.
     */
    async claimDueForReconcile(intervalS: number, limit: number): Promise<string[]> {
      const result = await db.execute<{ id: string }>(sql`
        update oura.users set reconciled_at = now()
        where id in (
          select id from oura.users
          where status = 'active'
            and coalesce(reconciled_at, connected_at + make_interval(secs => abs(hashtext(id)) % ${intervalS}) - make_interval(secs => ${intervalS}))
                <= now() - make_interval(secs => ${intervalS})
          order by reconciled_at nulls first
          limit ${limit}
          for update skip locked
        )
        returning id`);
      return result.rows.map((r) => r.id);
    },

    /**
     * Active users and when the newest webhook arrived (for the silence alert):
     * in the inbox if it waits there, else among the admitted events. The
     * newest by id (ids grow with time): index lookups, where
     * max(received_at) would read the whole table every tick.
     */
    async webhookActivity(): Promise<{ active: number; lastWebhookAt: Date | null }> {
      const result = await db.execute<{ active: number; last: string | null }>(sql`
        select (select count(*)::int from oura.users where status = 'active') as active,
               greatest((select received_at from oura.webhook_inbox order by id desc limit 1),
                        (select received_at from oura.webhook_events order by id desc limit 1)) as last`);
      const row = result.rows[0]!;
      return { active: row.active, lastWebhookAt: row.last ? new Date(row.last) : null };
    },

    /** Every user's token ciphertexts (for key rotation). */
    async tokenCiphertexts(): Promise<Array<{ id: string; access: string | null; refresh: string | null }>> {
      const rows = await db
        .select({ id: users.id, access: users.access_token_enc, refresh: users.refresh_token_enc })
        .from(users);
      return rows;
    },

    /** Replaces ciphertexts only if they are still the ones read (a refresh may have written new tokens meanwhile). */
    async replaceCiphertexts(id: string, from: { access: string | null; refresh: string | null }, to: { access: string | null; refresh: string | null }): Promise<boolean> {
      const rows = await db
        .update(users)
        .set({ access_token_enc: to.access, refresh_token_enc: to.refresh })
        .where(
          and(
            eq(users.id, id),
            from.access === null ? sql`${users.access_token_enc} is null` : eq(users.access_token_enc, from.access),
            from.refresh === null ? sql`${users.refresh_token_enc} is null` : eq(users.refresh_token_enc, from.refresh),
          ),
        )
        .returning({ id: users.id });
      return rows.length > 0;
    },
  };
}
export type UsersRepo = ReturnType<typeof createUsersRepo>;
