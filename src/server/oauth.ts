import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { RedisClient } from '../redis-connect.js';
import { createSigner } from '../crypto.js';
import type { UsersRepo } from '../db/users.js';
import { OuraApiError, type OuraClient } from '../oura/client.js';
import { authorizeUrl } from '../oura/authorize.js';
import type { TokenService } from '../oura/tokens.js';
import { AppError, fromOuraError } from '../errors/catalog.js';

const STATE_TTL_S = 600;

export interface OAuthDeps {
  clientId: string;
  authorizeUrl: string;
  publicBaseUrl: string;
  stateSecret: string;
  redis: RedisClient;
  keyPrefix: string;
  oura: OuraClient;
  users: UsersRepo;
  tokens: TokenService;
  /** Called after a user connects (backfill hooks in here). */
  onConnected?: (userId: string, reconnected: boolean) => Promise<void>;
}

/**
 * The OAuth2 connect flow. `state` is signed, expires in 10 minutes and can be
 * redeemed once (its nonce lives in Redis until used).
 */
export async function oauthRoutes(app: FastifyInstance, deps: OAuthDeps) {
  const signer = createSigner(deps.stateSecret);
  const redirectUri = `${deps.publicBaseUrl}/oauth/callback`;
  const nonceKey = (n: string) => `${deps.keyPrefix}:oauth:state:${n}`;
  const rateLimit = { max: 60, timeWindow: '1 minute' };

  app.get('/oauth/start', { config: { rateLimit } }, async (_req, reply) => {
    const nonce = randomBytes(16).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + STATE_TTL_S;
    const state = signer.sign(`${nonce}.${exp}`);
    await deps.redis.set(nonceKey(nonce), '1', 'EX', STATE_TTL_S);
    return reply.redirect(authorizeUrl({ authorizeEndpoint: deps.authorizeUrl, clientId: deps.clientId, redirectUri, state }), 302);
  });

  app.get('/oauth/callback', { config: { rateLimit } }, async (req, reply) => {
    const q = req.query as Record<string, unknown>;
    if (typeof q.error === 'string') throw new AppError('oauth_denied', `authorization was not granted (${q.error.slice(0, 64)})`);
    const state = typeof q.state === 'string' ? q.state : '';
    const code = typeof q.code === 'string' ? q.code : '';
    const payload = state ? signer.verify(state) : null;
    if (!payload) throw new AppError('invalid_state', 'state is missing or not ours');
    const [nonce, expRaw] = payload.split('.');
    if (!nonce || !expRaw || Number(expRaw) < Date.now() / 1000) throw new AppError('invalid_state', 'state has expired');
    if ((await deps.redis.del(nonceKey(nonce))) !== 1) throw new AppError('invalid_state', 'state was already used or has expired');
    if (!code) throw new AppError('bad_request', 'code is required');

    let userId: string;
    try {
      const tokens = await deps.oura.exchangeCode(code, redirectUri);
      const info = await deps.oura.personalInfo(tokens.access_token, { purpose: 'token' });
      userId = info.id;
      const { reconnected } = await deps.users.upsertConnected({ id: userId, personalInfo: info, ...deps.tokens.stored(tokens) });
      req.log.info({ userId, reconnected }, 'user connected');
      await deps.onConnected?.(userId, reconnected);
    } catch (err) {
      if (!(err instanceof OuraApiError)) throw err;
      req.log.warn({ status: err.status, code: err.code }, 'oauth exchange failed');
      throw fromOuraError(err, {
        refused: 'oauth_denied',
        refusedMessage: `Oura refused the authorization code (${err.code})`,
        unavailableMessage: 'Oura could not be reached; try connecting again',
      });
    }
    return reply.code(200).send({ status: 'connected', user_id: userId });
  });
}
