import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { DOCUMENT_TYPES, type DocumentType } from '../src/oura/registry.js';
import type { RequestLogEntry } from '../src/sim/state.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

/**
 * The pipeline where a partner with many users lives: a budget that is used
 * up all the time. Workers and simulator both at 20 requests per 5 s.
 */
const LIMIT = { limit: 20, windowS: 5 };
const DAY_MS = 86_400_000;

interface Doc {
  type: DocumentType;
  id: string;
  doc: Record<string, unknown>;
}
/** Which of these documents are in Postgres, equal to what Oura holds. */
async function landed(stack: Stack, userId: string, docs: Doc[]): Promise<Set<string>> {
  const byType = new Map<DocumentType, string[]>();
  for (const d of docs) byType.set(d.type, [...(byType.get(d.type) ?? []), d.id]);
  const union = [...byType.keys()].map((t, i) => `select id, document from oura.${t} where user_id = $1 and id = any($${i + 2})`).join(' union all ');
  const { rows } = await stack.deps.pool.query<{ id: string; document: unknown }>(union, [userId, ...byType.values()]);
  const got = new Map(rows.map((r) => [r.id, r.document]));
  return new Set(docs.filter((d) => isDeepStrictEqual(got.get(d.id), d.doc)).map((d) => d.id));
}

async function createDocs(stack: Stack, userId: string, n: number, dayOf: (i: number) => number): Promise<Doc[]> {
  const docs: Doc[] = [];
  for (let i = 0; i < n; i++) {
    const type = DOCUMENT_TYPES[i % DOCUMENT_TYPES.length]!;
    const day = new Date(Date.now() - dayOf(i) * DAY_MS).toISOString().slice(0, 10);
    const doc = (await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { day })) as Record<string, unknown>;
    docs.push({ type, id: String(doc.id), doc });
  }
  return docs;
}

function update(stack: Stack, userId: string, d: Doc) {
  return stack.simJson('POST', '/_sim/events', { event_type: 'update', data_type: d.type, object_id: d.id, user_id: userId });
}

describe('a scarce budget (20 requests per 5 s)', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'scarce', sim: { appLimit: LIMIT }, env: { OURA_APP_RATE_LIMIT: `${LIMIT.limit}/${LIMIT.windowS}` } });
    await stack.subscribeAll(DOCUMENT_TYPES);
  });
  after(async () => {
    await stack?.close();
  });

  test('200 documents of unknown day land progressively, with a few collection reads per type', async (t) => {
    const userId = await stack.connectUser();
    // Spread over every type and over the last month; none stored yet.
    const docs = await createDocs(stack, userId, 200, (i) => (i * 7) % 31);
    assert.equal(new Set(docs.map((d) => d.type)).size, 16);
    await new Promise((r) => setTimeout(r, LIMIT.windowS * 1000)); // the connect's requests leave the window
    const t0 = Date.now();
    for (let i = 0; i < docs.length; i += 20) await Promise.all(docs.slice(i, i + 20).map((d) => update(stack, userId, d)));

    // Watch them land: when each new document first appeared.
    const arrivals: number[] = [];
    const seen = new Set<string>();
    const deadline = t0 + 120_000;
    while (seen.size < docs.length && Date.now() < deadline) {
      for (const id of await landed(stack, userId, docs)) {
        if (!seen.has(id)) {
          seen.add(id);
          arrivals.push(Date.now() - t0);
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const log = ((await stack.simJson('GET', `/_sim/requests?since=${t0}`)) as RequestLogEntry[]).filter(
      (r) => r.userId === userId && r.path.startsWith('/v2/usercollection/'),
    );
    const gaps = arrivals.map((a, i) => a - (i === 0 ? 0 : arrivals[i - 1]!));
    const span = (log.at(-1)?.t ?? t0) - (log[0]?.t ?? t0);
    t.diagnostic(
      `scarce budget: ${seen.size}/200 documents in ${(arrivals.at(-1)! / 1000).toFixed(1)} s with ${log.length} requests ` +
        `(${log.filter((r) => r.status === 429).length} refused with 429) ` +
        `(${((log.length / Math.max(span, 1)) * 1000).toFixed(2)}/s); first after ${(arrivals[0]! / 1000).toFixed(1)} s; ` +
        `longest wait for a new document ${(Math.max(...gaps) / 1000).toFixed(1)} s`,
    );

    assert.equal(seen.size, 200, 'every document lands, equal to Oura’s');
    // Requests Oura refused (a 429, when a loaded machine sends a booked request late) count too.
    assert.ok(log.length <= 70, `${log.length} requests for 200 documents (at most 70)`);
    assert.ok(arrivals[0]! <= 5000, `the first documents land within 5 s (${arrivals[0]} ms)`);
    assert.ok(Math.max(...gaps) < 20_000, `never 20 s without a new document (longest ${Math.max(...gaps)} ms)`);
    const outcomes = async () =>
      (
        await stack.deps.pool.query<{ status: string; outcome: string; n: number }>(
          `select status, outcome, count(*)::int as n from oura.webhook_events where user_id = $1 group by 1, 2`,
          [userId],
        )
      ).rows;
    await eventually('every event finished', async () => (await outcomes()).every((r) => r.status !== 'queued'), { timeoutMs: 30_000 });
    assert.deepEqual(await outcomes(), [{ status: 'done', outcome: 'stored', n: 200 }], 'every event done as stored');
  });
});

/**
 * Oura can expire or revoke an access token at any time. Here tokens live 2 s
 * while the budget (10 requests per 5 s) makes requests wait longer than that
 * for their permit.
 */
describe('access tokens shorter-lived than the wait for a permit', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'short-tokens', sim: { appLimit: { limit: 10, windowS: 5 } }, env: { OURA_APP_RATE_LIMIT: '10/5' } });
    await stack.subscribeAll(DOCUMENT_TYPES);
  });
  after(async () => {
    await stack?.close();
  });

  test('access tokens that live 2 s: every event lands, no refresh token is reused, the user stays active', async () => {
    await stack.simJson('PATCH', '/_sim/config', { accessTokenTtlS: 2 });
    try {
      const userId = await stack.connectUser();
      const docs = await createDocs(stack, userId, 30, (i) => i % 2);
      const before = (await stack.simJson('GET', '/_sim/stats')) as { refreshTokensReused: number; grants: { refresh_token: number } };
      await new Promise((r) => setTimeout(r, 5000)); // the connect's token has expired, its requests left the window
      await Promise.all(docs.map((d) => update(stack, userId, d)));

      await eventually('all 30 documents land', async () => (await landed(stack, userId, docs)).size === docs.length, {
        timeoutMs: 90_000,
        intervalMs: 250,
      });
      const after = (await stack.simJson('GET', '/_sim/stats')) as typeof before;
      assert.ok(after.grants.refresh_token > before.grants.refresh_token, 'tokens were refreshed');
      assert.equal(after.refreshTokensReused - before.refreshTokensReused, 0, 'no refresh grant refused as already used');
      assert.equal((await stack.deps.users.get(userId))?.status, 'active');
      const { rows } = await stack.deps.pool.query<{ status: string; outcome: string; n: number }>(
        `select status, outcome, count(*)::int as n from oura.webhook_events where user_id = $1 group by 1, 2`,
        [userId],
      );
      assert.deepEqual(rows, [{ status: 'done', outcome: 'stored', n: 30 }]);
      assert.deepEqual(await stack.deps.queue.getFailed(), [], 'no event job dead-lettered');
    } finally {
      await stack.simJson('PATCH', '/_sim/config', { accessTokenTtlS: 86_400 });
    }
  });
});
