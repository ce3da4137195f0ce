import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OURA_SCOPES } from '../oura/registry.js';
import type { MetaOf } from './http.js';
import type { SimState } from './state.js';

/**
 * Oura's OAuth2 server, auto-approving: /oauth/authorize redirects straight
 * back with a code; /oauth/token exchanges codes and single-use refresh tokens.
 */

type Params = Record<string, string | undefined>;

const oauthError = (reply: FastifyReply, status: number, error: string, description: string) =>
  reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description });

/** Client credentials from HTTP Basic or the form body. */
function clientCredentials(req: FastifyRequest, body: Params): { id?: string; secret?: string } {
  const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (m?.[1]) {
    const decoded = Buffer.from(m[1], 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i >= 0) {
      return { id: decodeURIComponent(decoded.slice(0, i)), secret: decodeURIComponent(decoded.slice(i + 1)) };
    }
  }
  return { id: body.client_id, secret: body.client_secret };
}

export function registerOauthRoutes(app: FastifyInstance, state: SimState, meta: MetaOf): void {
  app.get('/oauth/authorize', async (req, reply) => {
    const q = req.query as Params;
    if (q.client_id !== state.config.clientId) return oauthError(reply, 400, 'invalid_client', 'Unknown client_id');
    if (q.response_type !== 'code') {
      return oauthError(reply, 400, 'unsupported_response_type', 'response_type must be "code"');
    }
    let redirect: URL;
    try {
      redirect = new URL(q.redirect_uri ?? '');
    } catch {
      return oauthError(reply, 400, 'invalid_request', 'redirect_uri is missing or not an absolute URL');
    }
    const requested = (q.scope ?? '').split(/[\s+]+/).filter(Boolean);
    const unknown = requested.filter((s) => !OURA_SCOPES.includes(s));
    if (unknown.length > 0) return oauthError(reply, 400, 'invalid_scope', `Unknown scope: ${unknown.join(' ')}`);
    const scope = (requested.length > 0 ? requested : OURA_SCOPES).join(' ');

    let userId = q.sim_user;
    if (userId !== undefined) {
      if (!state.users.has(userId)) return oauthError(reply, 400, 'invalid_request', `No simulated user ${userId}`);
    } else {
      userId = state.createUser({ historyDays: state.config.defaultHistoryDays }).id;
    }
    meta(req).userId = userId;
    const code = state.createCode(userId, state.config.clientId, q.redirect_uri as string, scope);
    redirect.searchParams.set('code', code.code);
    if (q.state !== undefined) redirect.searchParams.set('state', q.state);
    return reply.redirect(redirect.toString(), 302);
  });

  app.post('/oauth/token', async (req, reply) => {
    const body = (req.body ?? {}) as Params;
    const client = clientCredentials(req, body);
    if (client.id !== state.config.clientId || client.secret !== state.config.clientSecret) {
      return oauthError(reply, 401, 'invalid_client', 'Client authentication failed');
    }
    let userId: string;
    let scope: string;
    if (body.grant_type === 'authorization_code') {
      const code = body.code ? state.codes.get(body.code) : undefined;
      if (!body.code) return oauthError(reply, 400, 'invalid_request', 'code is required');
      if (code) state.codes.delete(code.code); // single use, even when the exchange fails below
      if (!code || code.expiresAt <= Date.now()) {
        return oauthError(reply, 400, 'invalid_grant', 'The authorization code is invalid, expired or already used');
      }
      if (code.clientId !== client.id) return oauthError(reply, 400, 'invalid_grant', 'The code was issued to another client');
      if (code.redirectUri !== body.redirect_uri) {
        return oauthError(reply, 400, 'invalid_grant', 'redirect_uri does not match the authorization request');
      }
      userId = code.userId;
      scope = code.scope;
    } else if (body.grant_type === 'refresh_token') {
      if (!body.refresh_token) return oauthError(reply, 400, 'invalid_request', 'refresh_token is required');
      const refresh = state.refreshTokens.get(body.refresh_token);
      if (refresh?.used) state.counters.refreshTokensReused++;
      if (!refresh || refresh.used || refresh.revoked || refresh.clientId !== client.id) {
        return oauthError(reply, 400, 'invalid_grant', 'The refresh token is invalid, revoked or already used');
      }
      refresh.used = true;
      userId = refresh.userId;
      scope = refresh.scope;
    } else {
      return oauthError(reply, 400, 'unsupported_grant_type', 'grant_type must be authorization_code or refresh_token');
    }
    if (!state.users.has(userId)) return oauthError(reply, 400, 'invalid_grant', 'The user no longer exists');
    state.grants[body.grant_type]++;
    meta(req).userId = userId;
    const { access, refresh } = state.issueTokens(userId, client.id, scope);
    return reply.header('cache-control', 'no-store').send({
      access_token: access.token,
      token_type: 'bearer',
      expires_in: state.config.accessTokenTtlS,
      refresh_token: refresh.token,
      scope,
    });
  });

  app.post('/oauth/revoke', async (req, reply) => {
    const q = req.query as Params;
    const body = (req.body ?? {}) as Params;
    const token = q.access_token ?? q.token ?? body.access_token ?? body.token;
    if (!token) return oauthError(reply, 400, 'invalid_request', 'access_token is required');
    const owner = state.accessTokens.get(token) ?? state.refreshTokens.get(token);
    if (owner) {
      meta(req).userId = owner.userId;
      const access = state.accessTokens.get(token);
      if (access) access.revoked = true;
      // Revoking a grant ends the user's refresh tokens for this client too.
      for (const r of state.refreshTokens.values()) if (r.userId === owner.userId && r.clientId === owner.clientId) r.revoked = true;
    }
    return reply.code(200).send({});
  });
}
