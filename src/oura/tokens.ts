import type { RedisClient } from '../redis-connect.js';
import type { Logger } from 'pino';
import type { TokenCipher } from '../crypto.js';
import type { UsersRepo } from '../db/users.js';
import type { Metrics } from '../metrics.js';
import { OuraApiError, type OuraClient, type TokenSet, type UserAuth } from './client.js';
import { LockTimeoutError, withLock } from '../redis-lock.js';

/** The user cannot be served until something changes (reconnect, membership). */
export class UserUnavailableError extends Error {
  override name = 'UserUnavailableError';
  constructor(
    readonly userId: string,
    readonly status: string,
    readonly reason: string | null,
  ) {
    super(`user is ${status}${reason ? ` (${reason})` : ''}`);
  }
}

/** How long a refresh waits for another process's refresh of the same user. */
const REFRESH_LOCK_WAIT_MS = 30_000;

/**
 * A token this close to its expiry is refreshed before it is sent. The token
 * is read just before its request goes out (after the permit), so a small
 * margin is enough; one expiring in flight costs a 401 and a retry.
 */
const REFRESH_AHEAD_MS = 1000;

/**
 * Gives workers a valid access token for a user and refreshes it when Oura says
 * it expired. Oura refresh tokens are single-use: refreshes are serialised per
 * user across every process with a Redis lock, and tokens are re-read after the
 * lock is taken, so many concurrent 401s cost one refresh.
 */
export function createTokenService(deps: {
  users: UsersRepo;
  cipher: TokenCipher;
  oura: OuraClient;
  redis: RedisClient;
  log: Logger;
  prefix: string;
  metrics?: Metrics;
}) {
  const { users, cipher, oura, redis } = deps;
  const log = deps.log.child({ module: 'tokens' });

  async function current(userId: string): Promise<{ accessToken: string; refreshToken: string; expiresAt: Date | null }> {
    const user = await users.get(userId);
    if (!user) throw new UserUnavailableError(userId, 'unknown', null);
    if (user.status !== 'active' || !user.access_token_enc || !user.refresh_token_enc) {
      throw new UserUnavailableError(userId, user.status, user.status_reason);
    }
    return {
      accessToken: cipher.decrypt(user.access_token_enc),
      refreshToken: cipher.decrypt(user.refresh_token_enc),
      expiresAt: user.token_expires_at,
    };
  }

  function stored(t: TokenSet) {
    return {
      accessTokenEnc: cipher.encrypt(t.access_token),
      refreshTokenEnc: cipher.encrypt(t.refresh_token),
      expiresAt: t.expires_in ? new Date(Date.now() + t.expires_in * 1000) : null,
      scopes: t.scope ?? null,
    };
  }

  /** Refreshes unless another process already replaced `staleAccessToken`. Returns the token to use. */
  async function refresh(userId: string, staleAccessToken: string): Promise<string> {
    const locked = await withLock(
      redis,
      `${deps.prefix}:lock:refresh:${userId}`,
      async () => {
        const now = await current(userId);
        if (now.accessToken !== staleAccessToken) return now.accessToken;
        let fresh: TokenSet;
        try {
          fresh = await oura.refresh(now.refreshToken);
        } catch (err) {
          if (err instanceof OuraApiError && (err.status === 400 || err.status === 401) && !err.retryable) {
            deps.metrics?.tokenRefreshes.inc({ result: 'refused' });
            await users.setStatus(userId, 'reauth_required', `refresh refused: ${err.code}`);
            log.warn({ userId, code: err.code }, 'refresh token refused; user must reconnect');
            throw new UserUnavailableError(userId, 'reauth_required', err.code);
          }
          throw err;
        }
        await users.saveTokens(userId, stored(fresh));
        deps.metrics?.tokenRefreshes.inc({ result: 'ok' });
        log.info({ userId }, 'access token refreshed');
        return fresh.access_token;
      },
      { ttlMs: 20_000, waitMs: REFRESH_LOCK_WAIT_MS },
    );
    if (!locked.acquired) throw new LockTimeoutError('refresh', REFRESH_LOCK_WAIT_MS);
    return locked.value;
  }

  const isUnauthorized = (err: unknown): err is OuraApiError => err instanceof OuraApiError && err.status === 401;

  return {
    stored,
    /**
     * Runs `fn` with the user's credentials. Their access token is read each
     * time a request goes out, after its permit (see UserAuth), and refreshed
     * first when it is about to expire. A 401 refreshes (one grant for
     * concurrent 401s) and runs `fn` again; a second 401 is a transient
     * failure for the caller's retries, never a terminal one: only a refused
     * refresh (UserUnavailableError) ends the user's access.
     */
    async withToken<T>(userId: string, fn: (auth: UserAuth) => Promise<T>): Promise<T> {
      let used: string | null = null;
      const auth: UserAuth = {
        userId,
        async token() {
          const t = await current(userId);
          used = t.accessToken;
          if (t.expiresAt && t.expiresAt.getTime() - Date.now() < REFRESH_AHEAD_MS) used = await refresh(userId, used);
          return used;
        },
      };
      try {
        return await fn(auth);
      } catch (err) {
        if (!isUnauthorized(err) || used === null) throw err;
        await refresh(userId, used);
        try {
          return await fn(auth);
        } catch (again) {
          if (!isUnauthorized(again)) throw again;
          throw new OuraApiError(`${again.message}, again after a refresh`, 401, true, { code: 'unauthorized_after_refresh' });
        }
      }
    },
  };
}
export type TokenService = ReturnType<typeof createTokenService>;
