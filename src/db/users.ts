import { and, eq, sql } from 'drizzle-orm';
import { withUserChanges } from './changes.js';
import type { Db } from './index.js';
import { USER_STATUSES, users, type UserStatus } from './schema/core.js';

/** The background refreshes the planner schedules per user (src/queues/refresh.ts). */
export type RefreshKind = 'reconcile' | 'timeseries';

export interface CadenceStats {
  /** Active users. */
  users: number;
  /** Seconds since each active user's last run: median, p99, worst (null: no active user). */
  p50AgeS: number | null;
  p99AgeS: number | null;
  maxAgeS: number | null;
  /** Active users whose last run is older than the target. */
  overdue: number;
}

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
      return withUserChanges(db, input.id, async (tx) => {
        const rows = await tx
          .insert(users)
          .values(values)
          .onConflictDoUpdate({ target: users.id, set: { ...values, connected_at: sql`now()` } })
          .returning({ inserted: sql<boolean>`(xmax = 0)` });
        return { result: { reconnected: !rows[0]?.inserted }, changes: [{ kind: 'user', op: 'connected' }] };
      });
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

    /** Sets the user's status; turning reauth_required is a change in the feed (user.reauth_required). */
    async setStatus(id: string, status: UserStatus, reason: string | null): Promise<void> {
      await withUserChanges(db, id, async (tx) => {
        const before = await tx.execute<{ status: UserStatus }>(sql`select status from oura.users where id = ${id} for update`);
        await tx.update(users).set({ status, status_reason: reason, updated_at: new Date() }).where(eq(users.id, id));
        const turned = before.rows[0] !== undefined && before.rows[0].status !== status && status === 'reauth_required';
        return { result: undefined, changes: turned ? [{ kind: 'user' as const, op: 'reauth_required' as const }] : [] };
      });
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
     * Active users to bring up to date next, most at risk first (see
     * src/workers/refresh-planner.ts): none whose last run is younger than
     * `minAgeS`. Reconciliation ranks by how long since the last run, as a
     * share of the target interval, plus one for a 404 or failure among the
     * user's events since then, plus one when the ring synced (the newest
     * time-series sample) more than `silenceS` after the last webhook: Oura's
     * webhooks may have missed changes. The time series rank by age alone.
     */
    async pickForRefresh(kind: RefreshKind, opts: { minAgeS: number; targetS: number; silenceS: number; limit: number }): Promise<string[]> {
      const last = kind === 'reconcile' ? sql`coalesce(reconciled_at, connected_at)` : sql`coalesce(series_refreshed_at, connected_at)`;
      const risk =
        kind === 'reconcile'
          ? sql`extract(epoch from now() - ${last}) / ${opts.targetS}
              + case when trouble_at > ${last} then 1 else 0 end
              + case when series_latest_at > coalesce(last_webhook_at, connected_at) + make_interval(secs => ${opts.silenceS}) then 1 else 0 end`
          : sql`extract(epoch from now() - ${last})`;
      const result = await db.execute<{ id: string }>(sql`
        select id from oura.users
        where status = 'active' and ${last} <= now() - make_interval(secs => ${opts.minAgeS})
        order by ${risk} desc, id
        limit ${opts.limit}`);
      return result.rows.map((r) => r.id);
    },

    /** A reconciliation of the user finished. */
    async markReconciled(id: string): Promise<void> {
      await db.execute(sql`update oura.users set reconciled_at = now(), reconcile_runs = reconcile_runs + 1, last_fetch_at = now() where id = ${id}`);
    },

    /** The user's time series were brought up to date; `latest`: the newest sample stored. */
    async markSeriesRefreshed(id: string, latest: Date | null): Promise<void> {
      await db.execute(sql`
        update oura.users set series_refreshed_at = now(), last_fetch_at = now(),
          series_latest_at = greatest(series_latest_at, ${latest ? latest.toISOString() : null}::timestamptz)
        where id = ${id}`);
    },

    /** A 404 or failure among the user's events: their next reconciliation moves up. */
    async markTrouble(id: string): Promise<void> {
      await db.execute(sql`update oura.users set trouble_at = now() where id = ${id}`);
    },

    /**
     * How far behind each kind of refresh is over the active users: seconds
     * since the last run at the median, p99 and worst, and how many users are
     * past the target (a user never run counts from when they connected).
     */
    async cadence(kind: RefreshKind, targetS: number): Promise<CadenceStats> {
      const last = kind === 'reconcile' ? sql`coalesce(reconciled_at, connected_at)` : sql`coalesce(series_refreshed_at, connected_at)`;
      const result = await db.execute<{ users: number; p50: number | null; p99: number | null; max: number | null; overdue: number }>(sql`
        with a as (select extract(epoch from now() - ${last})::float8 as age from oura.users where status = 'active')
        select count(*)::int as users,
               percentile_cont(0.5) within group (order by age) as p50,
               percentile_cont(0.99) within group (order by age) as p99,
               max(age) as max,
               count(*) filter (where age > ${targetS})::int as overdue
        from a`);
      const r = result.rows[0]!;
      const n = (v: number | null) => (v === null ? null : Math.round(Number(v)));
      return { users: r.users, p50AgeS: n(r.p50), p99AgeS: n(r.p99), maxAgeS: n(r.max), overdue: r.overdue };
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

    /** How many users are in each status (every status, 0 when none). */
    async countByStatus(): Promise<Record<UserStatus, number>> {
      const result = await db.execute<{ status: UserStatus; n: number }>(sql`select status, count(*)::int as n from oura.users group by status`);
      const counts = Object.fromEntries(USER_STATUSES.map((s) => [s, 0])) as Record<UserStatus, number>;
      for (const r of result.rows) counts[r.status] = r.n;
      return counts;
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
