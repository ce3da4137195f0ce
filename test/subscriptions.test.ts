import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { DOCUMENT_TYPES, documentTypes, WEBHOOK_OPERATIONS } from '../src/oura/registry.js';
import { maintenanceTasks } from '../src/workers/maintenance.js';
import { TEST_SECRETS } from './helpers/env.js';
import { startStack, type Stack } from './helpers/stack.js';

const DAY_MS = 86_400_000;

interface Seen {
  method: string;
  url: URL;
  status: number;
  body: string;
}

interface Sub {
  id: string;
  callback_url: string;
  event_type: string;
  data_type: string;
  expiration_time: string;
}

/**
 * Stands between the simulator and our API (through the simulator's callback
 * rewrite), so the test sees every request Oura makes to our callback and
 * what our API answered.
 */
async function startRecordingProxy(target: () => string): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      fetch(`${target()}${req.url}`, { method: req.method, headers, body })
        .then(async (r) => {
          const text = await r.text();
          seen.push({ method: req.method ?? '', url: new URL(req.url ?? '/', 'http://proxy'), status: r.status, body: text });
          res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' }).end(text);
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

const WANTED = DOCUMENT_TYPES.filter((t) => documentTypes[t].webhook).flatMap((d) => WEBHOOK_OPERATIONS.map((e) => `${e}/${d}`));
const pairOf = (s: { event_type: string; data_type: string }) => `${s.event_type}/${s.data_type}`;

describe('webhook subscriptions: sync against the simulator', () => {
  let stack: Stack;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  let callback: string;

  async function admin(method: string, path: string) {
    const res = await fetch(`${stack.apiUrl}${path}`, { method, headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } });
    return { status: res.status, body: (await res.json()) as any };
  }
  const sync = async () => {
    const res = await admin('POST', '/admin/subscriptions/sync');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return res.body as Record<'created' | 'renewed' | 'replaced' | 'unchanged' | 'removed' | 'left', Sub[]> & { failed: unknown[] };
  };
  const simSubs = async (): Promise<Sub[]> => stack.simJson('GET', '/_sim/subscriptions');
  const verifications = () => proxy.seen.filter((s) => s.method === 'GET' && s.url.pathname === '/webhooks/oura');
  const simSub = (pair: string): Sub & { verification_token: string } => {
    const s = [...stack.sim.state.subscriptions.values()].find((x) => pairOf(x) === pair);
    assert.ok(s, `subscription ${pair} exists`);
    return s;
  };
  const ids = (subs: Sub[]) => subs.map((s) => s.id).sort();
  /** A subscription made straight at Oura, as another deployment of the app would. */
  const createAtOura = async (callbackUrl: string, eventType: string, dataType: string): Promise<Sub> => {
    const res = await fetch(`${stack.sim.url}/v2/webhook/subscription`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-client-id': TEST_SECRETS.OURA_CLIENT_ID, 'x-client-secret': TEST_SECRETS.OURA_CLIENT_SECRET },
      body: JSON.stringify({ callback_url: callbackUrl, verification_token: TEST_SECRETS.OURA_WEBHOOK_VERIFICATION_TOKEN, event_type: eventType, data_type: dataType }),
    });
    assert.equal(res.status, 201);
    return (await res.json()) as Sub;
  };

  before(async () => {
    let target = '';
    proxy = await startRecordingProxy(() => target);
    stack = await startStack({ label: 'subs', inProcessWorker: false });
    target = stack.apiUrl;
    callback = `${stack.apiUrl}/webhooks/oura`;
    stack.sim.state.config.callbackRewrite = [{ from: stack.apiUrl, to: proxy.url }];
  });
  after(async () => {
    await stack?.close();
    await new Promise((r) => proxy?.server.close(r));
  });

  test('sync from empty creates exactly one verified subscription per (event_type, data_type)', async () => {
    assert.deepEqual(await simSubs(), []);
    const r = await sync();
    assert.equal(r.created.length, WANTED.length);
    assert.deepEqual([r.renewed, r.replaced, r.unchanged, r.removed, r.failed], [[], [], [], [], []]);

    const subs = await simSubs();
    assert.deepEqual(subs.map(pairOf).sort(), [...WANTED].sort(), 'one per pair, every pair');
    assert.ok(subs.every((s) => s.callback_url === callback), 'all call back PUBLIC_BASE_URL/webhooks/oura');
    assert.ok([...stack.sim.state.subscriptions.values()].every((s) => s.verification_token === TEST_SECRETS.OURA_WEBHOOK_VERIFICATION_TOKEN));

    // Oura's verification GET reached our API, which echoed the challenge.
    const checks = verifications();
    assert.equal(checks.length, WANTED.length, 'one verification per subscription');
    for (const c of checks) {
      assert.equal(c.url.searchParams.get('verification_token'), TEST_SECRETS.OURA_WEBHOOK_VERIFICATION_TOKEN);
      assert.equal(c.status, 200);
      assert.deepEqual(JSON.parse(c.body), { challenge: c.url.searchParams.get('challenge') });
    }

    // An event now reaches our API exactly once.
    const userId = await stack.connectUser();
    const sent = await stack.simJson('POST', '/_sim/events', { event_type: 'create', data_type: 'sleep', object_id: 'obj-1', user_id: userId });
    assert.deepEqual(sent.deliveries.map((d: { status: number }) => d.status), [200]);
  });

  test('a second sync changes nothing', async () => {
    const before = await simSubs();
    const checks = verifications().length;
    const since = Date.now();
    const r = await sync();
    assert.deepEqual([r.created, r.renewed, r.replaced, r.removed, r.failed], [[], [], [], [], []]);
    assert.deepEqual(ids(r.unchanged), ids(before));
    assert.deepEqual(await simSubs(), before, 'same subscriptions, same expiry');
    assert.equal(verifications().length, checks, 'no verification');
    const calls = (await stack.simJson('GET', `/_sim/requests?since=${since}`)) as Array<{ method: string; path: string }>;
    assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), ['GET /v2/webhook/subscription'], 'only the list was read');
  });

  test('subscriptions expiring within 7 days are renewed, by their expiration_time', async () => {
    // Oura hands out a short-lived subscription for one pair …
    await stack.simJson('PATCH', '/_sim/config', { subscriptionTtlS: 3 * 86_400 });
    stack.sim.state.subscriptions.delete(simSub('create/tag').id);
    const first = await sync();
    assert.deepEqual(first.created.map(pairOf), ['create/tag']);
    const shortLived = first.created[0]!;
    const ttl = Date.parse(shortLived.expiration_time) - Date.now();
    assert.ok(ttl > 2.9 * DAY_MS && ttl < 3.1 * DAY_MS, 'created with the lifetime Oura gave');
    await stack.simJson('PATCH', '/_sim/config', { subscriptionTtlS: 90 * 86_400 });

    // … and two others are close to the 7-day line, one on each side.
    const soon = simSub('update/daily_sleep');
    soon.expiration_time = new Date(Date.now() + 6.5 * DAY_MS).toISOString();
    const later = simSub('delete/workout');
    later.expiration_time = new Date(Date.now() + 7.5 * DAY_MS).toISOString();
    const laterExpiry = later.expiration_time;

    const r = await sync();
    assert.deepEqual(ids(r.renewed), [shortLived.id, soon.id].sort());
    assert.deepEqual([r.created, r.replaced, r.removed, r.failed], [[], [], [], []]);
    for (const s of r.renewed) assert.ok(Date.parse(s.expiration_time) > Date.now() + 30 * DAY_MS, `${pairOf(s)} renewed`);
    assert.equal(simSub('delete/workout').expiration_time, laterExpiry, 'the one 7.5 days out is left alone');
    assert.equal(r.unchanged.length, WANTED.length - 2);
  });

  test("another deployment's subscriptions are left alone; duplicates of ours are removed", async () => {
    // A staging deployment of the same Oura app subscribed for one pair …
    const staging = 'https://staging.example/webhooks/oura';
    const theirs = simSub('create/sleep');
    theirs.callback_url = staging;
    // … and we hold a duplicate for another, made straight at Oura.
    const original = simSub('delete/sleep');
    const dup = await createAtOura(callback, 'delete', 'sleep');
    assert.equal((await simSubs()).length, WANTED.length + 1);
    const checks = verifications().length;

    const r = await sync();
    assert.deepEqual(r.left.map((s) => [s.id, s.callback_url]), [[theirs.id, staging]], 'reported as left alone');
    assert.deepEqual(r.created.map(pairOf), ['create/sleep'], 'we get our own for that pair');
    assert.deepEqual(r.removed.map(pairOf), ['delete/sleep']);
    assert.deepEqual([r.removed[0]!.id, simSub('delete/sleep').id].sort(), [original.id, dup.id].sort(), 'one of the two is kept');
    assert.deepEqual([r.replaced, r.renewed, r.failed], [[], [], []]);
    const subs = await simSubs();
    assert.deepEqual(subs.filter((s) => s.callback_url === callback).map(pairOf).sort(), [...WANTED].sort(), 'one of ours per pair');
    assert.deepEqual(subs.filter((s) => s.callback_url !== callback).map((s) => [s.id, s.callback_url]), [[theirs.id, staging]], "staging's is untouched");
    assert.equal(verifications().length, checks + 1, 'our new one was verified against our API');

    const again = await sync();
    assert.deepEqual([again.created, again.replaced, again.removed, again.failed], [[], [], [], []], 'a second sync changes nothing');
    assert.deepEqual(again.left.map((s) => s.id), [theirs.id]);
  });

  test('take_over repoints another callback where we have none, and removes the rest', async () => {
    // The staging subscription for create/sleep stays from the test before; for update/sleep, only staging's exists.
    const staging = 'https://staging.example/webhooks/oura';
    const only = simSub('update/sleep');
    only.callback_url = staging;
    const stagingPair = [...stack.sim.state.subscriptions.values()].find((x) => pairOf(x) === 'create/sleep' && x.callback_url === staging);
    assert.ok(stagingPair);

    const refused = await fetch(`${stack.apiUrl}/admin/subscriptions/sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ take_over: 'yes' }),
    });
    assert.equal(refused.status, 400);
    assert.equal(((await refused.json()) as { code: string }).code, 'invalid_body');
    assert.equal(simSub('update/sleep').callback_url, staging, 'a refused request changes nothing');

    const res = await fetch(`${stack.apiUrl}/admin/subscriptions/sync`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ take_over: true }),
    });
    assert.equal(res.status, 200);
    const r = (await res.json()) as Record<'created' | 'replaced' | 'removed' | 'left' | 'failed', Sub[]>;
    assert.deepEqual(r.replaced.map((s) => [s.id, s.callback_url]), [[only.id, callback]]);
    assert.deepEqual(r.removed.map((s) => s.id), [stagingPair.id]);
    assert.deepEqual([r.created, r.left, r.failed], [[], [], []]);
    const subs = await simSubs();
    assert.deepEqual(subs.map(pairOf).sort(), [...WANTED].sort(), 'one per pair');
    assert.ok(subs.every((s) => s.callback_url === callback));
  });

  test('GET /admin/subscriptions lists them with their expiry; the daily task keeps them in sync', async () => {
    const res = await admin('GET', '/admin/subscriptions');
    assert.equal(res.status, 200);
    assert.equal(res.body.subscriptions.length, WANTED.length);
    for (const s of res.body.subscriptions) {
      assert.ok(Date.parse(s.expiration_time) > Date.now() + 7 * DAY_MS);
      assert.equal(s.ours, true);
      assert.equal('verification_token' in s, false);
    }

    const task = maintenanceTasks(stack.deps).find((t) => t.name === 'subscriptions-sync');
    assert.ok(task, 'the maintenance task exists');
    assert.equal(task.everyMs, DAY_MS);
    stack.sim.state.subscriptions.delete(simSub('update/vo2_max').id);
    const counts = (await task.run(stack.deps, stack.deps.log)) as Record<string, number>;
    assert.equal(counts.created, 1);
    assert.equal(counts.unchanged, WANTED.length - 1);
    assert.equal((await simSubs()).length, WANTED.length);
  });

  test('Oura failing is a 502, not a crash', async () => {
    await stack.simJson('POST', '/_sim/faults', { status: 503, count: 2, path: '/v2/webhook/subscription' });
    const list = await admin('GET', '/admin/subscriptions');
    assert.equal(list.status, 502);
    assert.equal(list.body.code, 'oura_unavailable');
    const s = await admin('POST', '/admin/subscriptions/sync');
    assert.equal(s.status, 502);
    assert.equal(s.body.code, 'oura_unavailable');
    await stack.simJson('DELETE', '/_sim/faults');
  });
});
