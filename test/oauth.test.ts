import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import { parse } from 'yaml';
import { createSigner } from '../src/crypto.js';
import { OURA_SCOPES } from '../src/oura/registry.js';
import { startStack, type Stack } from './helpers/stack.js';

const specUrl = path.join(repoRoot, '..', 'shared', 'oura', 'openapi.yml');

describe('OAuth connect flow', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'oauth', inProcessWorker: false });
  });
  after(async () => {
    await stack?.close();
  });

  async function start(): Promise<URL> {
    const res = await fetch(`${stack.apiUrl}/oauth/start`, { redirect: 'manual' });
    assert.equal(res.status, 302);
    return new URL(res.headers.get('location')!);
  }

  async function callback(query: string) {
    const res = await fetch(`${stack.apiUrl}/oauth/callback?${query}`, { redirect: 'manual' });
    return { status: res.status, body: (await res.json()) as { code?: string; message?: string; user_id?: string } };
  }

  test('start redirects to the authorize URL with every scope the spec names', async () => {
    const url = await start();
    assert.equal(`${url.origin}${url.pathname}`, `${stack.sim.url}/oauth/authorize`);
    assert.equal(url.searchParams.get('response_type'), 'code');
    assert.equal(url.searchParams.get('client_id'), stack.env.OURA_CLIENT_ID);
    assert.equal(url.searchParams.get('redirect_uri'), `${stack.apiUrl}/oauth/callback`);
    assert.ok(url.searchParams.get('state'));
    const scopes = url.searchParams.get('scope')!.split(' ').sort();
    if (existsSync(specUrl)) {
      const spec = parse(readFileSync(specUrl, 'utf8'));
      assert.deepEqual(scopes, Object.keys(spec.components.securitySchemes.OAuth2.flows.authorizationCode.scopes).sort());
    } else {
      assert.deepEqual(scopes, [...OURA_SCOPES].sort());
    }
  });

  test('a connected user is stored active with tokens only as ciphertext', async () => {
    const userId = await stack.connectUser();
    const user = await stack.deps.users.get(userId);
    assert.equal(user?.status, 'active');
    const issued = stack.sim.state.tokensOf(userId);
    assert.equal(stack.deps.cipher.decrypt(user!.access_token_enc!), issued.access.at(-1));
    assert.equal(stack.deps.cipher.decrypt(user!.refresh_token_enc!), issued.refresh.at(-1));
    assert.ok(!user!.access_token_enc!.includes(issued.access.at(-1)!));
  });

  test('state is single-use', async () => {
    const authorize = await start();
    const consent = await fetch(authorize, { redirect: 'manual' });
    const cb = new URL(consent.headers.get('location')!);
    const first = await callback(cb.searchParams.toString());
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const again = await callback(cb.searchParams.toString());
    assert.equal(again.status, 400);
    assert.equal(again.body.code, 'invalid_state');
  });

  test('missing, forged and expired state are refused with 400', async () => {
    const authorize = await start();
    const state = authorize.searchParams.get('state')!;
    const missing = await callback('code=abc');
    assert.equal(missing.status, 400);
    assert.equal(missing.body.code, 'invalid_state');
    const forged = await callback(`code=abc&state=${encodeURIComponent(state.slice(0, -2) + 'xx')}`);
    assert.equal(forged.status, 400);
    assert.equal(forged.body.code, 'invalid_state');
    const expired = createSigner(stack.deps.stateSecret).sign(`nonce.${Math.floor(Date.now() / 1000) - 1}`);
    const late = await callback(`code=abc&state=${encodeURIComponent(expired)}`);
    assert.equal(late.status, 400);
    assert.equal(late.body.code, 'invalid_state');
    const denied = await callback(`error=access_denied&state=${encodeURIComponent(state)}`);
    assert.equal(denied.status, 400);
    assert.equal(denied.body.code, 'oauth_denied');
  });

  test('a code Oura refuses gives 400 and stores nobody', async () => {
    const authorize = await start();
    const before = await stack.deps.pool.query('select count(*)::int as n from oura.users');
    const res = await callback(`code=not-a-real-code&state=${encodeURIComponent(authorize.searchParams.get('state')!)}`);
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'oauth_denied');
    const after = await stack.deps.pool.query('select count(*)::int as n from oura.users');
    assert.equal(after.rows[0].n, before.rows[0].n);
  });
});
