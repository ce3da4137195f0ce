/**
 * The Oura simulator against the Oura API v2 OpenAPI document: every route's
 * response validates against the spec, and the behaviours our service relies on
 * (date semantics, single-use refresh tokens, both 429 tiers, verified
 * subscriptions, signed deliveries) hold over real HTTP.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { repoRoot } from '../dev/service.js';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';
import { DOCUMENT_TYPES, TIME_SERIES, documentTypes, personalInfoPath, timeSeries } from '../src/oura/registry.js';
import { strictSchema } from '../src/oura/shape.js';
import { readSimConfig } from '../src/sim/config.js';
import { signWebhook, startSimulator } from '../src/sim/index.js';
import { addDays, todayUtc } from '../src/sim/time.js';

const SPEC_PATH = path.join(repoRoot, '..', 'shared', 'oura', 'openapi.yml');
const CLIENT = { id: 'test-client', secret: 'test-secret' };
const REDIRECT = 'http://127.0.0.1:9/callback';
const VERIFY_TOKEN = 'verify-me';
const HISTORY_DAYS = 10;

type Json = Record<string, any>;

// ---- OpenAPI 3.0 → ajv ---------------------------------------------------------

/**
 * Turns OpenAPI 3.0 schemas into JSON Schema: `nullable: true` becomes a union
 * with null, and objects that list their properties admit no others (so a field
 * the simulator invents is caught).
 */
function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node as Json)) {
    if (k === 'nullable' || k === 'example' || k === 'examples') continue;
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Json).map(([p, s]) => [p, toJsonSchema(s)])) : toJsonSchema(v);
  }
  if (out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  return (node as Json).nullable === true ? { anyOf: [out, { type: 'null' }] } : out;
}

function createContract(spec: Json) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addFormat('uuid4', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i);
  ajv.addSchema({ $id: 'oura', components: toJsonSchema(spec.components) });
  const cache = new Map<string, ValidateFunction>();
  const compile = (ref: string): ValidateFunction => {
    let v = cache.get(ref);
    if (!v) cache.set(ref, (v = ajv.compile({ $ref: `oura${ref}` })));
    return v;
  };
  return {
    /** Validates a body against the spec's response schema for (route, method, status). */
    check(route: string, method: string, status: number, body: unknown): void {
      const schema = spec.paths[route]?.[method]?.responses?.[String(status)]?.content?.['application/json']?.schema as Json | undefined;
      assert.ok(schema, `the spec has a JSON ${status} response for ${method.toUpperCase()} ${route}`);
      // Collections answer `anyOf [MultiDocumentResponse_X, …Dict]`: hold them to the typed branch.
      const typed = (schema.anyOf as Json[] | undefined)?.find((s) => typeof s.$ref === 'string' && !s.$ref.endsWith('Dict'));
      const ref = (typed ?? schema).$ref as string | undefined;
      const inline = () => ajv.compile(JSON.parse(JSON.stringify(toJsonSchema(schema)).replaceAll('"$ref":"#/', '"$ref":"oura#/')) as Json);
      const validate = ref ? compile(ref) : inline();
      assert.ok(validate(body), `${method.toUpperCase()} ${route} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 400)}`);
    },
    checkComponent(name: string, body: unknown): void {
      const validate = compile(`#/components/schemas/${name}`);
      assert.ok(validate(body), `${name}: ${ajv.errorsText(validate.errors)}`);
    },
  };
}

// ---- a callback server -----------------------------------------------------------

interface Received {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A tiny webhook endpoint: answers verification challenges (wrongly on /bad) and records everything. */
async function startCallbackServer() {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      received.push({ method: req.method ?? '', url, headers: req.headers, body });
      res.setHeader('content-type', 'application/json');
      if (req.method === 'GET') {
        const ok = url.searchParams.get('verification_token') === VERIFY_TOKEN && url.pathname !== '/bad';
        res.statusCode = ok ? 200 : 401;
        res.end(JSON.stringify(ok ? { challenge: url.searchParams.get('challenge') } : { error: 'nope' }));
      } else {
        res.end('{}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, received, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

// ---- the suite -------------------------------------------------------------------

describe('Oura simulator', () => {
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  let hooks: Awaited<ReturnType<typeof startCallbackServer>>;
  let token: string;
  let refresh: string;
  const today = todayUtc();

  const call = async (method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
    const body =
      opts.body === undefined ? undefined : headers['content-type'] === 'application/json' ? JSON.stringify(opts.body) : (opts.body as string);
    const res = await fetch(`${sim.url}${path}`, { method, headers, body, redirect: 'manual' });
    const text = await res.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, headers: res.headers, body: json };
  };
  const control = async (method: string, path: string, body?: unknown) => {
    const r = await call(method, path, { body });
    assert.ok(r.status < 400, `${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const webhookAuth = { 'x-client-id': CLIENT.id, 'x-client-secret': CLIENT.secret };
  const form = (fields: Record<string, string>) => ({
    body: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });

  /** The OAuth dance for an existing simulated user. */
  async function connect(userId: string): Promise<{ access_token: string; refresh_token: string }> {
    const q = new URLSearchParams({ response_type: 'code', client_id: CLIENT.id, redirect_uri: REDIRECT, scope: 'daily heartrate', state: 'xyz', sim_user: userId });
    const auth = await call('GET', `/oauth/authorize?${q}`);
    assert.equal(auth.status, 302);
    const location = new URL(auth.headers.get('location') ?? '');
    assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
    assert.equal(location.searchParams.get('state'), 'xyz');
    const code = location.searchParams.get('code') ?? '';
    const res = await call('POST', '/oauth/token', form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: CLIENT.id, client_secret: CLIENT.secret }));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.token_type, 'bearer');
    assert.equal(res.body.expires_in, 86400);
    assert.equal(res.body.scope, 'daily heartrate');
    // the code was single-use
    const again = await call('POST', '/oauth/token', form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, client_id: CLIENT.id, client_secret: CLIENT.secret }));
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_grant');
    return res.body;
  }

  before(async () => {
    hooks = await startCallbackServer();
    sim = await startSimulator({
      clientId: CLIENT.id,
      clientSecret: CLIENT.secret,
      seed: 7,
      pageSize: 4,
      timeSeriesPageSize: 100,
      callbackRewrite: [{ from: 'http://public.example', to: hooks.url }],
    });
    await control('POST', '/_sim/users', { id: 'alice', historyDays: HISTORY_DAYS });
    ({ access_token: token, refresh_token: refresh } = await connect('alice'));
  });

  after(async () => {
    await sim?.close();
    await hooks?.close();
  });

  test('every route answers what the OpenAPI document says', async (t) => {
    if (!existsSync(SPEC_PATH)) {
      t.skip('../shared/oura/openapi.yml not found: contract test skipped');
      return;
    }
    const contract = createContract(parse(readFileSync(SPEC_PATH, 'utf8')) as Json);
    const range = new URLSearchParams({ start_date: addDays(today, -HISTORY_DAYS - 5), end_date: addDays(today, 1) });

    for (const type of DOCUMENT_TYPES) {
      const info = documentTypes[type];
      const docs: Json[] = [];
      let next: string | null = null;
      let pages = 0;
      do {
        const qs = next ? `next_token=${encodeURIComponent(next)}` : info.dateField ? range.toString() : '';
        const res = await call('GET', `${info.path}${qs ? `?${qs}` : ''}`, { token });
        assert.equal(res.status, 200, `${type}: ${JSON.stringify(res.body)}`);
        contract.check(info.path, 'get', 200, res.body);
        docs.push(...res.body.data);
        next = res.body.next_token;
        pages++;
      } while (next);
      const all = (await control('GET', `/_sim/users/alice/documents/${type}`)) as Json[];
      assert.deepEqual(docs.map((d) => d.id).sort(), all.map((d) => d.id).sort(), `${type}: every page together is every document`);
      assert.ok(docs.length > 0, `${type}: history has documents`);
      if (docs.length > 4) assert.ok(pages > 1, `${type}: paginated`);

      const strict = strictSchema(info.shape);
      for (const doc of docs) {
        assert.ok(strict.safeParse(doc).success, `${type}: matches the registry shape`);
        for (const f of info.dateTimeFields) {
          const v = doc[f];
          if (v === null || v === undefined) continue;
          const s = info.shape.properties[f];
          const local = s?.kind === 'string' && s.format === 'localdatetime';
          assert.match(v, local ? /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/ : /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$/, `${type}.${f}`);
        }
      }

      const one = await call('GET', `${info.path}/${docs[0]?.id}`, { token });
      assert.equal(one.status, 200);
      contract.check(`${info.path}/{document_id}`, 'get', 200, one.body);
      assert.deepEqual(one.body, docs[0]);
    }

    for (const kind of TIME_SERIES) {
      const path = timeSeries[kind].path;
      const start = encodeURIComponent(`${addDays(today, -2)}T00:00:00+02:00`);
      const end = encodeURIComponent(`${today}T00:00:00+02:00`);
      let qs = `start_datetime=${start}&end_datetime=${end}`;
      const rows: Json[] = [];
      for (;;) {
        const res = await call('GET', `${path}?${qs}`, { token });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        contract.check(path, 'get', 200, res.body);
        rows.push(...res.body.data);
        if (!res.body.next_token) break;
        qs = `next_token=${encodeURIComponent(res.body.next_token)}`;
      }
      const step = kind === 'heartrate' ? 5 : 30;
      assert.equal(rows.length, (2 * 24 * 60) / step, `${kind}: one row every ${step} minutes for two days`);
      assert.ok(rows.every((r, i) => i === 0 || r.timestamp_unix - rows[i - 1]?.timestamp_unix === step * 60_000));
    }

    const me = await call('GET', personalInfoPath, { token });
    assert.equal(me.status, 200);
    contract.check(personalInfoPath, 'get', 200, me.body);
    assert.equal(me.body.id, 'alice');

    // 400 for a bad date carries the spec's HTTPValidationError shape
    const bad = await call('GET', `${documentTypes.daily_sleep.path}?start_date=2024-02-30`, { token });
    assert.equal(bad.status, 400);
    contract.checkComponent('HTTPValidationError', bad.body);

    // webhook subscription routes
    const base = '/v2/webhook/subscription';
    const created = await call('POST', base, {
      headers: webhookAuth,
      body: { callback_url: `${hooks.url}/hook`, verification_token: VERIFY_TOKEN, event_type: 'create', data_type: 'sleep' },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    contract.check(base, 'post', 201, created.body);
    const list = await call('GET', base, { headers: webhookAuth });
    contract.check(base, 'get', 200, list.body);
    const got = await call('GET', `${base}/${created.body.id}`, { headers: webhookAuth });
    contract.check(`${base}/{id}`, 'get', 200, got.body);
    const updated = await call('PUT', `${base}/${created.body.id}`, { headers: webhookAuth, body: { verification_token: VERIFY_TOKEN, event_type: 'update' } });
    contract.check(`${base}/{id}`, 'put', 200, updated.body);
    assert.equal(updated.body.event_type, 'update');
    const renewed = await call('PUT', `${base}/renew/${created.body.id}`, { headers: webhookAuth });
    contract.check(`${base}/renew/{id}`, 'put', 200, renewed.body);
    assert.ok(Date.parse(renewed.body.expiration_time) > Date.parse(created.body.expiration_time));
    const invalid = await call('POST', base, {
      headers: webhookAuth,
      body: { callback_url: `${hooks.url}/hook`, verification_token: VERIFY_TOKEN, event_type: 'upsert', data_type: 'sleep' },
    });
    assert.equal(invalid.status, 422);
    contract.check(base, 'post', 422, invalid.body);
    const deleted = await call('DELETE', `${base}/${created.body.id}`, { headers: webhookAuth });
    assert.equal(deleted.status, 204);
    assert.equal((await call('GET', `${base}/${created.body.id}`, { headers: webhookAuth })).status, 403);
  });

  test('a date-only end_date is the start of that day; start_date is inclusive', async () => {
    await control('POST', '/_sim/users', { id: 'dates' });
    const { access_token } = await connect('dates');
    const path = documentTypes.daily_sleep.path;
    for (const day of ['2025-03-01', '2025-03-02', '2025-03-03', today]) {
      await control('POST', '/_sim/users/dates/documents/daily_sleep', { day });
    }
    const days = async (qs: string): Promise<string[]> => {
      const res = await call('GET', `${path}${qs ? `?${qs}` : ''}`, { token: access_token });
      assert.equal(res.status, 200, `${qs}: ${JSON.stringify(res.body)}`);
      return res.body.data.map((d: Json) => d.day);
    };
    assert.deepEqual(await days('start_date=2025-03-01&end_date=2025-03-03'), ['2025-03-01', '2025-03-02']);
    assert.deepEqual(await days('start_date=2025-03-02&end_date=2025-03-04'), ['2025-03-02', '2025-03-03']);
    assert.deepEqual(await days('end_date=2025-03-03'), ['2025-03-02'], 'no start_date: one day before end_date');
    assert.deepEqual(await days(`start_date=2025-03-03&end_date=${encodeURIComponent('2025-03-03T12:00:00+02:00')}`), ['2025-03-03']);
    assert.deepEqual(await days(''), [today], 'no dates: today');
    const bad = await call('GET', `${path}?start_date=yesterday`, { token: access_token });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.body.detail[0].loc, ['query', 'start_date']);
  });

  test('time series: an unescaped "+" and ranges over 30 days are refused', async () => {
    const path = timeSeries.heartrate.path;
    const raw = await call('GET', `${path}?start_datetime=${today}T00:00:00+02:00&end_datetime=${today}T06:00:00%2B02:00`, { token });
    assert.equal(raw.status, 400, 'a raw + decodes to a space');
    const long = await call('GET', `${path}?start_datetime=${addDays(today, -40)}T00:00:00Z&end_datetime=${today}T00:00:00Z`, { token });
    assert.equal(long.status, 400);
  });

  test('documents: 404 when deleted or another user’s; auth failures are 401/403', async () => {
    const [mine] = (await control('GET', '/_sim/users/alice/documents/workout')) as Json[];
    await control('POST', '/_sim/users', { id: 'bob', historyDays: 1 });
    const bob = await connect('bob');
    const path = `${documentTypes.workout.path}/${mine?.id}`;
    assert.equal((await call('GET', path, { token })).status, 200);
    const other = await call('GET', path, { token: bob.access_token });
    assert.equal(other.status, 404);
    assert.deepEqual(other.body, { detail: 'Not Found' });

    const doc = await control('POST', '/_sim/users/bob/documents/workout', {});
    await control('DELETE', `/_sim/users/bob/documents/workout/${doc.id}`);
    assert.equal((await call('GET', `${documentTypes.workout.path}/${doc.id}`, { token: bob.access_token })).status, 404);

    assert.equal((await call('GET', personalInfoPath)).status, 401);
    assert.equal((await call('GET', personalInfoPath, { token: 'nope' })).status, 401);
    await control('PATCH', '/_sim/users/bob', { forbidden: true });
    assert.equal((await call('GET', personalInfoPath, { token: bob.access_token })).status, 403);
    await control('PATCH', '/_sim/users/bob', { forbidden: false });
    await control('POST', '/_sim/users/bob/expire-tokens');
    const expired = await call('GET', personalInfoPath, { token: bob.access_token });
    assert.equal(expired.status, 401);
    assert.equal(typeof expired.body.detail, 'string');

    await control('POST', '/_sim/faults', { status: 503, count: 2, path: '/v2/usercollection/personal_info' });
    assert.equal((await call('GET', personalInfoPath, { token })).status, 503);
    assert.equal((await call('GET', personalInfoPath, { token })).status, 503);
    assert.equal((await call('GET', personalInfoPath, { token })).status, 200);
  });

  test('refresh tokens are single-use', async () => {
    const before = (await control('GET', '/_sim/stats')).grants.refresh_token;
    const body = { grant_type: 'refresh_token', refresh_token: refresh };
    const basic = { authorization: `Basic ${Buffer.from(`${CLIENT.id}:${CLIENT.secret}`).toString('base64')}` };
    const first = await call('POST', '/oauth/token', { body: new URLSearchParams(body).toString(), headers: { ...form({}).headers, ...basic } });
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.notEqual(first.body.refresh_token, refresh);
    const reuse = await call('POST', '/oauth/token', form({ ...body, client_id: CLIENT.id, client_secret: CLIENT.secret }));
    assert.equal(reuse.status, 400);
    assert.deepEqual(reuse.body.error, 'invalid_grant');
    const badClient = await call('POST', '/oauth/token', form({ grant_type: 'refresh_token', refresh_token: first.body.refresh_token, client_id: CLIENT.id, client_secret: 'wrong' }));
    assert.equal(badClient.status, 401);
    assert.equal(badClient.body.error, 'invalid_client');
    assert.equal((await control('GET', '/_sim/stats')).grants.refresh_token, before + 1, 'exactly one refresh grant');
    token = first.body.access_token;
    refresh = first.body.refresh_token;
    assert.equal((await call('GET', personalInfoPath, { token })).status, 200);

    // revoking the user ends both kinds of token
    await control('POST', '/_sim/users/bob/revoke');
    const bobRefresh = sim.state.tokensOf('bob').refresh.at(-1) ?? '';
    const revoked = await call('POST', '/oauth/token', form({ grant_type: 'refresh_token', refresh_token: bobRefresh, client_id: CLIENT.id, client_secret: CLIENT.secret }));
    assert.equal(revoked.body.error, 'invalid_grant');
  });

  test('429 on either tier carries all five rate-limit headers', async () => {
    const path = personalInfoPath;
    const expectLimited = (res: Awaited<ReturnType<typeof call>>, tier: string, limit: number, windowS: number) => {
      assert.equal(res.status, 429);
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= windowS, `Retry-After ${retryAfter}`);
      assert.equal(res.headers.get('x-ratelimit-limit'), String(limit));
      assert.equal(res.headers.get('x-ratelimit-window'), String(windowS));
      const reset = Number(res.headers.get('x-ratelimit-reset'));
      const now = Date.now() / 1000;
      assert.ok(Number.isInteger(reset) && reset > now && reset <= now + windowS + 1, `X-RateLimit-Reset ${reset}`);
      assert.equal(res.headers.get('x-ratelimit-tier'), tier);
    };

    await control('PATCH', '/_sim/config', { appLimit: null, tokenLimit: { limit: 3, windowS: 60 } });
    for (let i = 0; i < 3; i++) assert.equal((await call('GET', path, { token })).status, 200);
    expectLimited(await call('GET', path, { token }), 'token', 3, 60);
    const bob = await connect('bob');
    assert.equal((await call('GET', path, { token: bob.access_token })).status, 200, 'another token has its own quota');

    await control('PATCH', '/_sim/config', { appLimit: { limit: 2, windowS: 1 }, tokenLimit: null });
    assert.equal((await call('GET', path, { token })).status, 200);
    assert.equal((await call('GET', path, { token: bob.access_token })).status, 200);
    for (let i = 0; i < 3; i++) expectLimited(await call('GET', path, { token }), 'application', 2, 1);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await call('GET', path, { token })).status, 200, 'refused requests did not count');

    const log = (await control('GET', '/_sim/requests')) as Json[];
    const limited = log.filter((r) => r.status === 429);
    assert.deepEqual(limited.map((r) => r.tier), ['token', 'application', 'application', 'application']);
    assert.ok(limited.every((r) => r.path === path && typeof r.t === 'number' && r.userId === 'alice'));
    assert.equal((await control('GET', '/_sim/stats')).rateLimited, 4);
    await control('PATCH', '/_sim/config', { appLimit: null, tokenLimit: null });
  });

  test('subscriptions are verified on create; deliveries are signed', async () => {
    const base = '/v2/webhook/subscription';
    hooks.received.length = 0;
    assert.equal((await call('GET', base)).status, 401, 'client headers required');

    const rejected = await call('POST', base, {
      headers: webhookAuth,
      body: { callback_url: `${hooks.url}/bad`, verification_token: VERIFY_TOKEN, event_type: 'create', data_type: 'workout' },
    });
    assert.equal(rejected.status, 422);
    assert.ok(Array.isArray(rejected.body.detail));

    for (const event_type of ['create', 'update', 'delete']) {
      const res = await call('POST', base, {
        headers: webhookAuth,
        body: { callback_url: `${hooks.url}/hook`, verification_token: VERIFY_TOKEN, event_type, data_type: 'workout' },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const checks = hooks.received.filter((r) => r.method === 'GET' && r.url.pathname === '/hook');
    assert.equal(checks.length, 3, 'one verification GET per subscription');
    assert.equal(checks[0]?.url.searchParams.get('verification_token'), VERIFY_TOKEN);
    assert.ok((checks[0]?.url.searchParams.get('challenge') ?? '').length > 0);

    const secret = CLIENT.secret;
    const posts = () => hooks.received.filter((r) => r.method === 'POST');
    const assertSigned = (r: Received) => {
      const ts = String(r.headers['x-oura-timestamp']);
      assert.match(ts, /^\d+$/);
      assert.ok(Math.abs(Number(ts) - Date.now() / 1000) < 60);
      const expected = createHmac('sha256', secret).update(ts + r.body).digest('hex').toUpperCase();
      assert.equal(r.headers['x-oura-signature'], expected);
      assert.equal(signWebhook(secret, ts, r.body), expected);
      assert.equal(r.headers['content-type'], 'application/json');
      return JSON.parse(r.body) as Json;
    };

    const doc = await control('POST', '/_sim/users/alice/documents/workout', { notify: true });
    const updated = await control('PATCH', `/_sim/users/alice/documents/workout/${doc.id}`, { notify: true });
    assert.notDeepEqual(updated, doc, 'an update without fields still changes something');
    await control('DELETE', `/_sim/users/alice/documents/workout/${doc.id}?notify=true`);
    const events = posts().map(assertSigned);
    assert.deepEqual(events.map((e) => e.event_type), ['create', 'update', 'delete']);
    for (const e of events) {
      assert.deepEqual(Object.keys(e), ['event_type', 'data_type', 'object_id', 'event_time', 'user_id']);
      assert.equal(e.data_type, 'workout');
      assert.equal(e.object_id, doc.id);
      assert.equal(e.user_id, 'alice');
      assert.ok(!Number.isNaN(Date.parse(e.event_time)));
    }

    const direct = await control('POST', '/_sim/events', {
      event_type: 'create', data_type: 'meal', object_id: 'meal-1', user_id: 'alice', callback_url: `${hooks.url}/hook`,
    });
    assert.deepEqual(direct.deliveries, [{ callback_url: `${hooks.url}/hook`, status: 200 }]);
    assert.equal(assertSigned(posts().at(-1) as Received).data_type, 'meal');

    // a public callback URL is reached through the rewrite (compose: localhost → api container)
    const viaPublic = await call('POST', base, {
      headers: webhookAuth,
      body: { callback_url: 'http://public.example/hook', verification_token: VERIFY_TOKEN, event_type: 'create', data_type: 'tag' },
    });
    assert.equal(viaPublic.status, 201, JSON.stringify(viaPublic.body));
    assert.equal(viaPublic.body.callback_url, 'http://public.example/hook');
    const tag = await control('POST', '/_sim/users/alice/documents/tag', { notify: true });
    assert.equal(assertSigned(posts().at(-1) as Received).object_id, tag.id);
  });

  test('the CLI reads its settings from the environment, naming a bad variable', () => {
    const c = readSimConfig({ SIM_APP_RATE_LIMIT: '10/1', SIM_CALLBACK_REWRITE: 'http://localhost:8080=http://api:8080' });
    assert.equal(c.SIM_PORT, 8090);
    assert.equal(c.OURA_CLIENT_ID, 'sim-client-id');
    assert.deepEqual(c.SIM_APP_RATE_LIMIT, { limit: 10, windowS: 1 });
    assert.equal(c.SIM_TOKEN_RATE_LIMIT, null);
    assert.deepEqual(c.SIM_CALLBACK_REWRITE, [{ from: 'http://localhost:8080', to: 'http://api:8080' }]);
    assert.deepEqual(readSimConfig({}).SIM_APP_RATE_LIMIT, { limit: 5000, windowS: 300 });
    assert.throws(() => readSimConfig({ SIM_TOKEN_RATE_LIMIT: 'fast' }), /^Error: Invalid SIM_TOKEN_RATE_LIMIT=/);
    assert.throws(() => readSimConfig({ SIM_HISTORY_DAYS: '-1' }), /SIM_HISTORY_DAYS/);
  });
});
