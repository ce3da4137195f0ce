import type { Deps } from '../deps.js';
import { AppError } from '../errors/catalog.js';
import { eventJobId, startBackfill } from '../queues/index.js';

/** A user as the admin API and CLI show it: status and activity, never tokens or personal_info. */
export interface AdminUser {
  id: string;
  status: string;
  status_reason: string | null;
  connected_at: string;
  last_webhook_at: string | null;
  last_fetch_at: string | null;
  /** The last refusal Oura gave that retrying cannot fix (403/426), if any. */
  access_error: string | null;
  /** Progress of the user's historical load, over every data type. */
  backfill: BackfillSummary | null;
}

export interface BackfillSummary {
  status: 'running' | 'done' | 'failed';
  /** Data types finished, of all. */
  types_done: number;
  types_total: number;
  windows_done: number;
  windows_total: number;
  /** Documents and samples stored so far. */
  items: number;
  requests: number;
  started_at: string;
  finished_at: string | null;
  /** Data types whose load failed, with the reason. */
  failed: Array<{ data_type: string; error: string | null }>;
}

type ProgressRow = Awaited<ReturnType<Deps['backfill']['all']>>[number];

export function summarizeBackfill(rows: ProgressRow[]): BackfillSummary | null {
  if (rows.length === 0) return null;
  const failed = rows.filter((r) => r.status === 'failed');
  const running = rows.some((r) => r.status === 'running');
  const finished = rows.map((r) => r.finished_at?.getTime() ?? 0);
  return {
    status: failed.length > 0 ? 'failed' : running ? 'running' : 'done',
    types_done: rows.filter((r) => r.status === 'done').length,
    types_total: rows.length,
    windows_done: rows.reduce((a, r) => a + r.windows_done, 0),
    windows_total: rows.reduce((a, r) => a + r.windows_total, 0),
    items: rows.reduce((a, r) => a + r.items, 0),
    requests: rows.reduce((a, r) => a + r.requests, 0),
    started_at: new Date(Math.min(...rows.map((r) => r.started_at.getTime()))).toISOString(),
    finished_at: running ? null : new Date(Math.max(...finished)).toISOString(),
    failed: failed.map((r) => ({ data_type: r.data_type, error: r.error })),
  };
}

type UserRow = Awaited<ReturnType<Deps['admin']['listUsers']>>[number];

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/** One row → what is shown. */
export function toAdminUser(row: UserRow, progress: ProgressRow[] = []): AdminUser {
  return {
    id: row.id,
    status: row.status,
    status_reason: row.status_reason,
    connected_at: row.connected_at.toISOString(),
    last_webhook_at: iso(row.last_webhook_at),
    last_fetch_at: iso(row.last_fetch_at),
    access_error: row.access_error ?? null,
    backfill: summarizeBackfill(progress),
  };
}

export async function listUsers(deps: Pick<Deps, 'admin' | 'backfill'>): Promise<AdminUser[]> {
  const [rows, progress] = await Promise.all([deps.admin.listUsers(), deps.backfill.all()]);
  const byUser = new Map<string, ProgressRow[]>();
  for (const p of progress) byUser.set(p.user_id, [...(byUser.get(p.user_id) ?? []), p]);
  return rows.map((r) => toAdminUser(r, byUser.get(r.id)));
}

/** Days an on-demand backfill loads when not told: BACKFILL_DAYS, or 90 when the load on connect is off. */
export function defaultBackfillDays(deps: Pick<Deps, 'config'>): number {
  return deps.config.BACKFILL_DAYS > 0 ? deps.config.BACKFILL_DAYS : 90;
}

/** Starts a fresh backfill of the user's last `days` days (all types, both series). */
export async function backfillUser(deps: Deps, input: { userId: string; days: number }): Promise<{ user_id: string; days: number }> {
  const user = await deps.users.get(input.userId);
  if (!user) throw new AppError('not_found', `no user ${input.userId}`);
  if (user.status !== 'active') throw new AppError('bad_request', `user ${input.userId} is ${user.status}; they must reconnect first`);
  await startBackfill(deps, input.userId, input.days);
  return { user_id: input.userId, days: input.days };
}

/** The user's backfill progress now. */
export async function backfillProgressOf(deps: Pick<Deps, 'backfill'>, userId: string): Promise<BackfillSummary | null> {
  return summarizeBackfill(await deps.backfill.forUser(userId));
}

export interface DisconnectResult {
  user_id: string;
  /** Oura accepted the revocation of the user's token. */
  revoked: boolean;
  /** Rows deleted from schema `oura`, the user's own included. */
  deleted_rows: number;
}

/**
 * Disconnects a user: revokes their token at Oura (best effort: a failure is
 * logged, not fatal), then deletes their tokens and every row of their data in
 * one transaction, deliveries not yet admitted from the inbox included.
 * Events that arrive later are recorded, and the worker marks them ignored
 * (user_unknown) without a request; jobs still queued for their events find
 * no event and do nothing (and are removed here when they are not running).
 * Connecting again later is a new connection.
 */
export async function disconnectUser(
  deps: Pick<Deps, 'admin' | 'users' | 'cipher' | 'oura' | 'queue' | 'log'>,
  input: { userId: string; onProgress?: (step: string) => void },
): Promise<DisconnectResult> {
  const log = deps.log.child({ module: 'admin', userId: input.userId });
  const user = await deps.users.get(input.userId);
  if (!user) throw new AppError('not_found', `no user ${input.userId}`);

  let revoked = false;
  if (user.access_token_enc) {
    input.onProgress?.('revoking the token at Oura');
    try {
      await deps.oura.revoke(deps.cipher.decrypt(user.access_token_enc));
      revoked = true;
    } catch (err) {
      const e = err as Error & { code?: string; status?: number };
      log.warn({ err: e }, 'token revocation failed; disconnecting anyway');
    }
  }

  input.onProgress?.('deleting tokens and data');
  const deleted = await deps.admin.deleteUser(input.userId);
  if (!deleted) throw new AppError('not_found', `no user ${input.userId}`);

  // Tidy the queue: waiting, delayed and dead-lettered jobs of the deleted events.
  for (const id of deleted.openEventIds) {
    await deps.queue.remove(eventJobId(id)).catch(() => 0);
  }
  log.info({ revoked, rows: deleted.rows }, 'user disconnected');
  return { user_id: input.userId, revoked, deleted_rows: deleted.rows };
}
