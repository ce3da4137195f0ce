import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

interface LogEntry {
  t: number;
  path: string;
  status: number;
  userId: string | null;
  tier: string | null;
}

const TYPES = DOCUMENT_TYPES.slice(0, 8);

async function storedAll(stack: Stack, docs: Array<{ type: string; id: string }>): Promise<boolean> {
  for (const d of docs) {
    const { rowCount } = await stack.deps.pool.query(`select 1 from oura.${d.type} where id = $1`, [d.id]);
    if (!rowCount) return false;
  }
  return true;
}

describe('rate-limit tiers: Oura\'s 429s pause the right callers', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'tiers', inProcessWorker: false, env: { OURA_APP_RATE_LIMIT: '200/10' } });
    await stack.subscribeAll(TYPES);
    stack.spawnProcess('worker');
    stack.spawnProcess('worker');
  });
  after(async () => {
    await stack?.close();
  });

  test('an application-tier 429 stops every process for its Retry-After', async () => {
    const userA = await stack.connectUser();
    const userB = await stack.connectUser();
    await stack.simJson('POST', '/_sim/faults', { status: 429, count: 1, path: '/v2/usercollection/', tier: 'application', retryAfterS: 2 });
    const docs: Array<{ type: string; id: string }> = [];
    for (const type of TYPES) {
      for (const u of [userA, userB]) docs.push({ type, id: (await stack.simJson('POST', `/_sim/users/${u}/documents/${type}`, { notify: true })).id });
    }
    await eventually('all stored', () => storedAll(stack, docs), { timeoutMs: 30_000 });
    const log = ((await stack.simJson('GET', '/_sim/requests')) as LogEntry[]).filter((r) => r.path.startsWith('/v2/usercollection/'));
    const hit = log.find((r) => r.status === 429);
    assert.ok(hit, 'the 429 happened');
    assert.equal(hit.tier, 'application');
    // Requests already on the wire when the 429 came back may arrive just after it; then silence until Retry-After.
    const during = log.filter((r) => r.t > hit.t + 200 && r.t < hit.t + 2000 - 100);
    assert.deepEqual(during, [], 'no process called Oura during the pause');
    assert.ok(log.some((r) => r.t >= hit.t + 1900), 'calls resumed after the pause');
  });

  test('a token-tier 429 for user A does not slow user B', async () => {
    const userA = await stack.connectUser();
    const userB = await stack.connectUser();
    await stack.simJson('DELETE', '/_sim/requests');
    await stack.simJson('POST', '/_sim/faults', { status: 429, count: 1, userId: userA, tier: 'token', retryAfterS: 4 });
    const docsA: Array<{ type: string; id: string }> = [];
    for (const type of TYPES) docsA.push({ type, id: (await stack.simJson('POST', `/_sim/users/${userA}/documents/${type}`, { notify: true })).id });
    await eventually('A was limited', async () =>
      ((await stack.simJson('GET', '/_sim/requests')) as LogEntry[]).some((r) => r.status === 429 && r.userId === userA),
    );
    const docsB: Array<{ type: string; id: string }> = [];
    for (const type of TYPES) docsB.push({ type, id: (await stack.simJson('POST', `/_sim/users/${userB}/documents/${type}`, { notify: true })).id });
    await eventually('B stored', () => storedAll(stack, docsB), { timeoutMs: 10_000 });
    await eventually('A stored after its pause', () => storedAll(stack, docsA), { timeoutMs: 20_000 });
    const log = (await stack.simJson('GET', '/_sim/requests')) as LogEntry[];
    const hit = log.find((r) => r.status === 429 && r.userId === userA)!;
    assert.equal(hit.tier, 'token');
    const pauseEnd = hit.t + 4000;
    const bDuring = log.filter((r) => r.userId === userB && r.t > hit.t && r.t < pauseEnd);
    assert.ok(bDuring.length >= 1, 'B was served during A\'s pause');
    assert.ok(bDuring.every((r) => r.status === 200));
    const aDuring = log.filter((r) => r.userId === userA && r.t > hit.t + 200 && r.t < pauseEnd - 100);
    assert.deepEqual(aDuring, [], 'A waited for its Retry-After');
  });
});
