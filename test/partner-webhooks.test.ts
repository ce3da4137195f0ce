import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { loadConfig } from '../src/config.js';
import { withUserChanges, type ChangeInput } from '../src/db/changes.js';
import { startPartnerWebhooks } from '../src/outbound/sender.js';
import { TEST_LOG_DIR } from './check-logs.js';
import { serviceArgs } from './helpers/env.js';
import { eventually, repoRoot, startStack, type Stack } from './helpers/stack.js';

/**
 * Outbound webhooks to a partner, per the Standard Webhooks specification,
 * received by a real HTTP server that verifies every request with the
 * specification's own library (`standardwebhooks`).
 */

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const TIMEOUT_MS = 500;
const PARTNER_ENV = {
  PARTNER_WEBHOOK_SECRET: SECRET,
  PARTNER_WEBHOOK_INCLUDE_DOCUMENT: 'true',
  PARTNER_WEBHOOK_RETRY_SCHEDULE: '50ms,100ms',
  PARTNER_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS),
  PARTNER_WEBHOOK_CONCURRENCY: '4',
};

interface Received {
  id: string;
  timestamp: number;
  signature: string;
  at: number;
  type: string;
  body: { type: string; timestamp: string; data: Record<string, unknown> };
  /** What the receiver answered: a status, or 'hang' (no answer; the sender times out). */
  answer: number | 'hang';
}

type Answer = (r: Received, attemptNo: number) => number | 'hang' | Promise<number | 'hang'>;

/** The partner: verifies each request, records it, and answers as `answer` says (200 by default). */
async function startReceiver() {
  const verifier = new Webhook(SECRET);
  const received: Received[] = [];
  const problems: string[] = [];
  const inFlightByUser = new Map<string, number>();
  let inFlight = 0;
  let maxInFlight = 0;
  let maxInFlightPerUser = 0;
  let answer: Answer = () => 200;
  const hung = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      let body: Received['body'];
      try {
        body = verifier.verify(raw, headers) as Received['body'];
      } catch (err) {
        problems.push(`${headers['webhook-id']}: ${(err as Error).message}`);
        res.writeHead(400).end();
        return;
      }
      if (req.method !== 'POST' || headers['content-type'] !== 'application/json') problems.push(`${headers['webhook-id']}: ${req.method} ${headers['content-type']}`);
      const r: Received = {
        id: headers['webhook-id']!,
        timestamp: Number(headers['webhook-timestamp']),
        signature: headers['webhook-signature']!,
        at: Date.now(),
        type: body.type,
        body,
        answer: 200,
      };
      const user = String(body.data.user_id);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      inFlightByUser.set(user, (inFlightByUser.get(user) ?? 0) + 1);
      maxInFlightPerUser = Math.max(maxInFlightPerUser, inFlightByUser.get(user)!);
      const done = () => {
        inFlight--;
        inFlightByUser.set(user, inFlightByUser.get(user)! - 1);
      };
      const attemptNo = received.filter((x) => x.id === r.id).length + 1;
      received.push(r);
      void Promise.resolve(answer(r, attemptNo)).then((a) => {
        r.answer = a;
        if (a === 'hang') {
          hung.add(res);
          // The sender gives up; the request's end is when it counts as over here.
          res.on('close', () => {
            hung.delete(res);
            done();
          });
          return;
        }
        done();
        res.writeHead(a, { 'content-type': 'text/plain' }).end('ok');
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    problems,
    stats: () => ({ maxInFlight, maxInFlightPerUser }),
    resetStats() {
      maxInFlight = 0;
      maxInFlightPerUser = 0;
    },
    answerWith(a: Answer) {
      answer = a;
    },
    /** Requests answered 2xx, by webhook-id (the first such). */
    delivered: () => {
      const m = new Map<string, Received>();
      for (const r of received) if (r.answer !== 'hang' && r.answer < 300 && !m.has(r.id)) m.set(r.id, r);
      return m;
    },
    async close() {
      for (const res of hung) res.destroy();
      server.closeAllConnections();
      server.close();
    },
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

describe('outbound webhooks (Standard Webhooks)', () => {
  let stack: Stack;
  let receiver: Receiver;
  let sender: ReturnType<typeof startPartnerWebhooks> = null;
  const admin = (method: string, route: string, body?: unknown) =>
    fetch(`${stack.apiUrl}/admin${route}`, {
      method,
      headers: { authorization: `Bearer ${stack.secrets.ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  const query = async <T extends Record<string, unknown>>(text: string, values: unknown[] = []) => (await stack.deps.pool.query<T>(text, values)).rows;
  /** Changes of fake users written directly (no Oura user needed): one transaction per change. */
  const writeChanges = (userId: string, list: ChangeInput[]) =>
    withUserChanges(stack.deps.db, userId, async () => ({ result: null, changes: list }));
  const doc = (n: number): ChangeInput => ({ kind: 'document', op: 'create', dataType: 'tag', objectId: `obj-${n}`, day: '2024-05-01' });
  const seqsOf = async (userId: string) => (await query<{ seq: string }>(`select seq from oura.changes where user_id = $1 order by seq`, [userId])).map((r) => Number(r.seq));
  const deliveryRow = async (seq: number) =>
    (await query<{ status: string; attempts: number; last_status: number | null }>(`select status, attempts, last_status from oura.partner_webhook_deliveries where seq = $1`, [seq]))[0];

  before(async () => {
    receiver = await startReceiver();
    // The service here runs without outbound webhooks; the tests start the sender themselves.
    stack = await startStack({ label: 'partner-webhooks' });
  });
  after(async () => {
    await sender?.close();
    if (stack) {
      // For the log scan: the secret and every signature sent.
      mkdirSync(TEST_LOG_DIR, { recursive: true });
      const signatures = receiver.received.flatMap((r) => r.signature.split(' ').map((s) => s.slice(3)));
      writeFileSync(path.join(TEST_LOG_DIR, `${stack.prefix}-partner.secrets.json`), JSON.stringify([SECRET, SECRET.slice(6), ...signatures]));
    }
    await stack?.close();
    await receiver?.close();
  });

  test('nothing is sent without PARTNER_WEBHOOK_URL and _SECRET; once on, history is not sent', async () => {
    assert.equal(startPartnerWebhooks(stack.deps), null);
    const userId = await stack.connectUser();
    await stack.subscribeAll(['daily_sleep']);
    const d = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_sleep`, { notify: true });
    await eventually('document stored', async () => (await query(`select 1 from oura.daily_sleep where id = $1`, [d.id])).length === 1);
    assert.equal((await seqsOf(userId)).length, 2, 'connected, and the document: changes there were to send');
    assert.deepEqual(await query(`select * from oura.partner_webhook_cursor`), []);
    assert.deepEqual(await query(`select * from oura.partner_webhook_deliveries`), []);

    // The feed shows a change once no older transaction runs anywhere on the server (another test's too):
    // until then it is not history yet, and would be sent.
    const last = Math.max(...(await seqsOf(userId)));
    await eventually('the changes are readable in the feed', async () =>
      (await query(`select 1 from oura.changes where seq = $1 and txid < pg_snapshot_xmin(pg_current_snapshot())`, [last])).length === 1,
    );
    sender = startPartnerWebhooks({ ...stack.deps, config: loadConfig({ ...stack.env, ...PARTNER_ENV, PARTNER_WEBHOOK_URL: receiver.url }) });
    assert.ok(sender);
    await eventually('cursor at the end of the feed', async () => Number((await query<{ seq: string }>(`select seq from oura.partner_webhook_cursor`))[0]?.seq) === last);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(receiver.received.length, 0, 'history is not sent');
  });

  test('every event type, signed and shaped as the specification says, the document included', async () => {
    const userId = await stack.connectUser();
    const next = async (type: string) => {
      await eventually(`${type} delivered`, async () => receiver.received.some((r) => r.type === type && r.body.data.user_id === userId && r.answer === 200));
      return receiver.received.find((r) => r.type === type && r.body.data.user_id === userId)!;
    };
    const connected = await next('user.connected');
    const created = await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_sleep`, { notify: true });
    const c = await next('document.created');
    await stack.simJson('PATCH', `/_sim/users/${userId}/documents/daily_sleep/${created.id}`, { fields: { score: 11 }, notify: true });
    const u = await next('document.updated');
    await stack.simJson('DELETE', `/_sim/users/${userId}/documents/daily_sleep/${created.id}?notify=true`);
    const del = await next('document.deleted');
    const t0 = new Date(Date.now() - 60_000).toISOString();
    await stack.deps.series.upsert('heartrate', userId, [
      { timestamp: t0, bpm: 61, source: 'awake' },
      { timestamp: new Date().toISOString(), bpm: 62, source: 'awake' },
    ]);
    const ts = await next('timeseries.updated');
    await writeChanges(userId, [{ kind: 'user', op: 'backfill_completed' }]);
    const bf = await next('user.backfill_completed');
    await stack.deps.users.setStatus(userId, 'reauth_required', 'refresh refused');
    const reauth = await next('user.reauth_required');
    // Disconnecting deletes the user's rows, their changes too.
    const changes = await query<{ seq: string; changed_at: Date }>(`select seq, changed_at from oura.changes where user_id = $1`, [userId]);
    const changedAt = new Map(changes.map((r) => [`msg_${r.seq}`, r.changed_at.toISOString()]));
    assert.equal((await admin('DELETE', `/users/${userId}`)).status, 200);
    const gone = await next('user.disconnected');

    const all = [connected, c, u, del, ts, bf, reauth, gone];
    for (const r of all) {
      assert.match(r.id, /^msg_\d+$/);
      if (r !== gone) assert.equal(r.body.timestamp, changedAt.get(r.id), 'timestamp: when the change happened');
      assert.ok(Math.abs(r.timestamp * 1000 - r.at) < 5000, 'webhook-timestamp: seconds, when sent');
      assert.match(r.signature, /^v1,[A-Za-z0-9+/]{43}=$/);
      assert.deepEqual(Object.keys(r.body), ['type', 'timestamp', 'data']);
    }
    assert.ok(all.every((r, i) => i === 0 || Number(r.id.slice(4)) > Number(all[i - 1]!.id.slice(4))), 'in the order they happened');
    assert.deepEqual(connected.body.data, { user_id: userId });
    const { document, ...createdData } = c.body.data;
    assert.deepEqual(createdData, { user_id: userId, data_type: 'daily_sleep', object_id: created.id, day: created.day });
    assert.deepEqual(document, created, 'the document as Oura sent it');
    assert.equal((u.body.data.document as { score: number }).score, 11);
    assert.deepEqual(del.body.data, { user_id: userId, data_type: 'daily_sleep', object_id: created.id, day: created.day }, 'no document once deleted');
    assert.deepEqual(ts.body.data, { user_id: userId, data_type: 'heartrate', start: t0, end: ts.body.data.end });
    assert.ok(new Date(String(ts.body.data.end)) > new Date(t0));
    for (const r of [bf, reauth, gone]) assert.deepEqual(r.body.data, { user_id: userId });
    assert.deepEqual(receiver.problems, [], 'every request verified by standardwebhooks');
  });

  test('in order per user, one at a time per user, several users at once, through retries', async () => {
    const users = ['order-a', 'order-b', 'order-c', 'order-d', 'order-e'];
    receiver.resetStats();
    // Every third message fails its first attempt; answers take 0-30 ms.
    receiver.answerWith(async (r, n) => {
      const seq = Number(r.id.slice(4));
      await new Promise((res) => setTimeout(res, (seq * 7) % 30));
      return seq % 3 === 0 && n === 1 ? 500 : 200;
    });
    await Promise.all(users.map(async (u) => {
      for (let i = 0; i < 12; i++) await writeChanges(u, [doc(i)]);
    }));
    const expected = new Map(await Promise.all(users.map(async (u) => [u, await seqsOf(u)] as const)));
    await eventually('every message delivered', async () => [...expected.values()].flat().every((s) => receiver.delivered().has(`msg_${s}`)), { timeoutMs: 20_000 });
    for (const u of users) {
      const attempts = receiver.received.filter((r) => r.body.data.user_id === u).map((r) => Number(r.id.slice(4)));
      assert.ok(attempts.every((s, i) => i === 0 || s >= attempts[i - 1]!), `${u}: no message before an earlier one is delivered`);
      assert.deepEqual([...new Set(attempts)], expected.get(u));
    }
    assert.ok(receiver.received.some((r) => r.answer === 500), 'retries happened');
    assert.equal(receiver.stats().maxInFlightPerUser, 1, 'one message in flight per user');
    assert.ok(receiver.stats().maxInFlight > 1, 'users served at once');
    receiver.answerWith(() => 200);
  });

  test('retried after a 500 and a timeout; dead after the schedule without holding the user back; listed and replayed', async () => {
    receiver.answerWith((r, n) => {
      if (r.body.data.user_id === 'retry-u') return n === 1 ? 500 : n === 2 ? 'hang' : 200;
      if (r.body.data.user_id === 'dead-u' && r.body.data.object_id === 'obj-1') return 503;
      return 200;
    });
    await writeChanges('retry-u', [doc(1)]);
    const [retrySeq] = await seqsOf('retry-u');
    await writeChanges('dead-u', [doc(1)]);
    await writeChanges('dead-u', [doc(2)]);
    const [deadSeq, laterSeq] = await seqsOf('dead-u');
    await eventually('retried, then delivered', async () => (await deliveryRow(retrySeq!))?.status === 'delivered', { timeoutMs: 10_000 });
    assert.deepEqual(await deliveryRow(retrySeq!), { status: 'delivered', attempts: 3, last_status: 200 });
    const tries = receiver.received.filter((r) => r.id === `msg_${retrySeq}`);
    assert.deepEqual(tries.map((r) => r.answer), [500, 'hang', 200]);
    assert.ok(tries[2]!.at - tries[1]!.at >= TIMEOUT_MS + 100, 'the hung attempt timed out, then the schedule\'s second delay');

    await eventually('dead', async () => (await deliveryRow(deadSeq!))?.status === 'dead', { timeoutMs: 10_000 });
    assert.deepEqual(await deliveryRow(deadSeq!), { status: 'dead', attempts: 3, last_status: 503 });
    await eventually('the later message delivered', async () => receiver.delivered().has(`msg_${laterSeq}`));
    const deadTries = receiver.received.filter((r) => r.id === `msg_${deadSeq}`);
    assert.equal(deadTries.length, 3, 'the first attempt and one per delay of the schedule');
    assert.ok(receiver.delivered().get(`msg_${laterSeq}`)!.at >= deadTries[2]!.at, 'the later one after the dead one');

    const list = await admin('GET', '/partner-webhooks/dead?user_id=dead-u');
    assert.equal(list.status, 200);
    const body = (await list.json()) as { total: number; dead: Array<Record<string, unknown>> };
    assert.equal(body.total, 1);
    assert.deepEqual(
      { ...body.dead[0], finished_at: typeof body.dead[0]!.finished_at },
      {
        seq: deadSeq,
        webhook_id: `msg_${deadSeq}`,
        user_id: 'dead-u',
        event_type: 'document.created',
        data: { user_id: 'dead-u', data_type: 'tag', object_id: 'obj-1', day: '2024-05-01' },
        occurred_at: body.dead[0]!.occurred_at,
        attempts: 3,
        last_status: 503,
        last_error: 'HTTP 503',
        finished_at: 'string',
      },
    );
    assert.equal((await admin('POST', '/partner-webhooks/replay', { seqs: [laterSeq] })).status, 404, 'not a dead letter: nothing replayed');
    assert.equal((await admin('POST', '/partner-webhooks/replay', {})).status, 400);

    // The CLI lists it and replays it: sent again with the same webhook-id.
    receiver.answerWith(() => 200);
    const dead = await cli(['webhooks', 'dead', '--json']);
    assert.equal(dead.code, 0, dead.stderr);
    assert.deepEqual((JSON.parse(dead.stdout) as { dead: Array<{ seq: number }> }).dead.map((d) => d.seq), [deadSeq]);
    const replay = await cli(['webhooks', 'replay', String(deadSeq)]);
    assert.equal(replay.code, 0, replay.stderr);
    assert.equal(replay.stdout, 'replayed 1 outbound webhook\n');
    await eventually('replayed and delivered', async () => (await deliveryRow(deadSeq!))?.status === 'delivered');
    assert.equal(receiver.received.filter((r) => r.id === `msg_${deadSeq}`).length, 4);
    const usage = await cli(['webhooks', 'replay']);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^error: webhooks replay needs seqs or --all/);

    const metrics = await (await fetch(`${stack.apiUrl}/metrics`)).text();
    assert.match(metrics, /^oura_ingest_partner_webhook_attempts_total\{outcome="dead"\} [1-9]/m);
    assert.match(metrics, /^oura_ingest_partner_webhook_attempts_total\{outcome="failed"\} [1-9]/m);
    assert.match(metrics, /^oura_ingest_partner_webhook_dead 0$/m);
  });

  test('a partner that hangs delays no ingestion; its messages go dead, and replaying all delivers them', async () => {
    receiver.answerWith(() => 'hang');
    const userId = await stack.connectUser();
    await eventually('the partner hangs', async () => receiver.received.some((r) => r.body.data.user_id === userId));
    const started = Date.now();
    const docs: Array<{ id: string }> = [];
    for (let i = 0; i < 3; i++) docs.push(await stack.simJson('POST', `/_sim/users/${userId}/documents/daily_sleep`, { notify: true }));
    await eventually('documents stored', async () => (await query(`select 1 from oura.daily_sleep where id = any($1)`, [docs.map((d) => d.id)])).length === 3);
    const tookMs = Date.now() - started;
    assert.ok(tookMs < 3000, `stored in ${tookMs} ms`);
    assert.ok(receiver.received.filter((r) => r.answer === 'hang').length >= 1, 'the partner hung meanwhile');

    // Failing fast from now on: the four messages (connected, three documents) go dead one after another.
    receiver.answerWith(() => 503);
    await eventually('all four dead', async () => (await query(`select 1 from oura.partner_webhook_deliveries where user_id = $1 and status = 'dead'`, [userId])).length === 4, { timeoutMs: 15_000 });
    receiver.answerWith(() => 200);
    const r = await admin('POST', '/partner-webhooks/replay', { all: true });
    assert.deepEqual(await r.json(), { replayed: 4 });
    await eventually('replayed, delivered', async () => docs.every((d) => [...receiver.delivered().values()].some((x) => x.body.data.object_id === d.id)));
    const order = [...receiver.delivered().values()].filter((x) => x.body.data.user_id === userId && x.type === 'document.created').map((x) => x.body.data.object_id);
    assert.deepEqual(order, docs.map((d) => d.id), 'replayed in order');
  });

  test('a worker killed (SIGKILL) mid-stream loses no message: another finishes, the receiver deduplicates by webhook-id', async () => {
    await sender?.close();
    sender = null;
    receiver.answerWith(async () => {
      await new Promise((r) => setTimeout(r, 150));
      return 200;
    });
    const env = { ...PARTNER_ENV, PARTNER_WEBHOOK_URL: receiver.url };
    const first = stack.spawnProcess('worker', env);
    const users = ['kill-a', 'kill-b', 'kill-c'];
    await Promise.all(users.map(async (u) => {
      for (let i = 0; i < 15; i++) await writeChanges(u, [doc(i)]);
    }));
    const expected = (await Promise.all(users.map(seqsOf))).flat();
    await eventually('some delivered', async () => expected.filter((s) => receiver.delivered().has(`msg_${s}`)).length >= 8, { timeoutMs: 20_000 });
    assert.ok(expected.some((s) => !receiver.delivered().has(`msg_${s}`)), 'killed mid-stream');
    const exited = once(first, 'exit');
    first.kill('SIGKILL');
    await exited;
    stack.spawnProcess('worker', env);
    await eventually('every message delivered', async () => expected.every((s) => receiver.delivered().has(`msg_${s}`)), { timeoutMs: 30_000 });
    await eventually('every message marked delivered', async () =>
      (await query(`select 1 from oura.partner_webhook_deliveries where user_id = any($1) and status = 'delivered'`, [users])).length === expected.length,
    );
    for (const u of users) {
      const firsts = [...receiver.delivered().values()].filter((r) => r.body.data.user_id === u).map((r) => Number(r.id.slice(4)));
      assert.deepEqual(firsts, await seqsOf(u), `${u}: each once (by webhook-id), in order`);
    }
    assert.deepEqual(receiver.problems, []);
  });

  /** Runs the CLI compiled, with the stack's environment. */
  function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, serviceArgs('cli/main', args), { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...stack.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }
});
