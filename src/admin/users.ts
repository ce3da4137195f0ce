import type { Deps } from '../deps.js';
import { AppError } from '../server/errors.js';
import { eventJobId } from '../workers/queues.js';

/** A user as the admin API and CLI show it: status and activity, never tokens or personal_info. */
export interface AdminUser {
  id: string;
  status: string;
  status_reason: string | null;
  connected_at: string;
  last_webhook_at: string | null;
  last_fetch_at: string | null;
}

type UserRow = Awaited<ReturnType<Deps['admin']['listUsers']>>[number];

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/** One row → what is shown. Fields added later (e.g. backfill progress) belong here. */
export function toAdminUser(row: UserRow): AdminUser {
  return {
    id: row.id,
    status: row.status,
    status_reason: row.status_reason,
    connected_at: row.connected_at.toISOString(),
    last_webhook_at: iso(row.last_webhook_at),
    last_fetch_at: iso(row.last_fetch_at),
  };
}

export async function listUsers(deps: Pick<Deps, 'admin'>): Promise<AdminUser[]> {
  const rows = await deps.admin.listUsers();
  return rows.map(toAdminUser);
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
 * one transaction. Events that arrive later are recorded as unknown_user;
 * jobs still queued for their events find no event and do nothing (and are
 * removed here when they are not running). Connecting again later is a new
 * connection.
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
      log.warn({ err: { message: e.message, code: e.code, status: e.status } }, 'token revocation failed; disconnecting anyway');
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
