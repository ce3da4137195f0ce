import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { RequestLogEntry } from '../src/sim/state.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

/**
 * Oura can answer 404 for a document right after its create webhook (seen in
 * the wild for sleep: the same id gave 404 twice, 30 s apart). Such a 404 gets
 * one delayed re-check, a collection read of the event's day, before the
 * object counts as gone.
 */
describe('a 404 right after a create is re-checked before it counts as gone', () => {
  let stack: Stack;
  let userId: string;
  before(async () => {
    stack = await startStack({ label: 'recheck', env: { RECHECK_DELAY_S: '2', RECHECK_WINDOW_S: '600' } });
    await stack.subscribeAll(['sleep', 'workout']);
    userId = await stack.connectUser();
  });
  after(async () => {
    await stack?.close();
  });

  const eventsOf = async (objectId: string) =>
    (
      await stack.deps.pool.query<{ event_type: string; status: string; outcome: string | null; recheck_at: Date | null }>(
        'select event_type, status, outcome, recheck_at from oura.webhook_events where object_id = $1 order by id',
        [objectId],
      )
    ).rows;
  const eventOf = async (objectId: string) => (await eventsOf(objectId))[0];
  const stored = async (type: string, id: string) =>
    (await stack.deps.pool.query<{ document: unknown }>(`select document from oura.${type} where id = $1`, [id])).rows[0]?.document ?? null;
  const outcomeCount = async (outcome: string) =>
    (await stack.deps.metrics.eventsProcessed.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  const requestsFor = async (since: number, path: string) =>
    ((await stack.simJson('GET', `/_sim/requests?since=${since}`)) as RequestLogEntry[]).filter((r) => r.userId === userId && r.path.startsWith(path));

  test('Oura answers 404 for a new sleep document twice, then serves it: the document lands', async () => {
    const id = `sleep-${randomBytes(6).toString('hex')}`;
    await stack.simJson('POST', '/_sim/faults', { status: 404, count: 2, path: `/v2/usercollection/sleep/${id}`, userId });
    const since = Date.now();
    const created = await stack.simJson('POST', `/_sim/users/${userId}/documents/sleep`, { fields: { id }, notify: true });

    // The first read's 404 sets the event aside for its re-check; nothing is stored or removed yet.
    const waiting = await eventually('event waiting for its re-check', async () => {
      const e = await eventOf(id);
      return e?.recheck_at ? e : null;
    });
    assert.equal(waiting.status, 'queued');
    assert.equal(await stored('sleep', id), null);

    const doc = await eventually('the document lands after the re-check', () => stored('sleep', id), { timeoutMs: 15_000 });
    assert.deepEqual(doc, created);
    const e = await eventually('its event done', async () => {
      const r = await eventOf(id);
      return r?.status === 'done' ? r : null;
    });
    assert.equal(e.outcome, 'stored');
    const log = await requestsFor(since, '/v2/usercollection/sleep');
    assert.deepEqual(
      log.map((r) => [r.path === '/v2/usercollection/sleep' ? 'collection' : 'single', r.status]),
      [
        ['single', 404],
        ['collection', 200],
      ],
      'one single read (404), then one collection read of the day',
    );
    assert.ok(log[1]!.t - log[0]!.t >= 1900, `the re-check waited RECHECK_DELAY_S (${log[1]!.t - log[0]!.t} ms)`);
  });

  test('a document that stays 404 is gone after one re-check, and a late update never resurrects a deleted one', async () => {
    const goneBefore = await outcomeCount('gone_after_recheck');
    // A document we hold, deleted at Oura without a webhook (a late update for it follows).
    const held = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, { notify: true });
    await eventually('the held document lands', () => stored('workout', held.id));
    await stack.simJson('DELETE', `/_sim/users/${userId}/documents/workout/${held.id}`);
    const since = Date.now();
    // A create for an object Oura never serves, then the late update.
    const ghost = `workout-${randomBytes(6).toString('hex')}`;
    await stack.simJson('POST', '/_sim/events', { event_type: 'create', data_type: 'workout', object_id: ghost, user_id: userId });
    await eventually('the create waits for its re-check', async () => (await eventsOf(ghost))[0]?.recheck_at);
    await stack.simJson('POST', '/_sim/events', { event_type: 'update', data_type: 'workout', object_id: held.id, user_id: userId });

    await eventually(
      'both finished',
      async () => (await eventsOf(ghost)).concat(await eventsOf(held.id)).every((e) => e.status === 'done'),
      { timeoutMs: 15_000 },
    );
    assert.deepEqual(
      (await eventsOf(ghost)).map((e) => e.outcome),
      ['gone_after_recheck'],
    );
    assert.deepEqual(
      (await eventsOf(held.id)).map((e) => [e.event_type, e.outcome]),
      [
        ['create', 'stored'],
        ['update', 'gone_after_recheck'],
      ],
    );
    assert.equal(await stored('workout', ghost), null, 'no row for the object Oura never served');
    assert.equal(await stored('workout', held.id), null, 'the late update did not resurrect the deleted document');
    assert.equal((await outcomeCount('gone_after_recheck')) - goneBefore, 2, 'counted as gone_after_recheck');

    const log = await requestsFor(since, '/v2/usercollection/workout');
    const collections = log.filter((r) => r.path === '/v2/usercollection/workout');
    const singles = (id: string) => log.filter((r) => r.path === `/v2/usercollection/workout/${id}`).map((r) => r.status);
    // The held document's stored day is inside the re-check's read: its absence there settles it.
    assert.deepEqual(singles(held.id), [404], 'the held document: one single read');
    // The ghost was never stored, so the read cannot tell whether its day was covered: one more single read.
    assert.deepEqual(singles(ghost), [404, 404], 'the ghost: its first read and the re-check’s');
    assert.ok(collections.length >= 1 && collections.length <= 2, `one re-check read (or one each): ${collections.length}`);
    // Nothing more is read for them afterwards.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal((await requestsFor(since, '/v2/usercollection/workout')).length, log.length, 'no second re-check');
  });

  test('an update of an older stored document, answered 404 once: the re-check reads its stored day and keeps it', async () => {
    const day = new Date(Date.now() - 6 * 86_400_000).toISOString().slice(0, 10);
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, { day, notify: true });
    await eventually('stored', () => stored('workout', doc.id));
    const changed = await stack.simJson('PATCH', `/_sim/users/${userId}/documents/workout/${doc.id}`, {});
    await stack.simJson('POST', '/_sim/faults', { status: 404, count: 1, path: `/v2/usercollection/workout/${doc.id}`, userId });
    await stack.simJson('POST', '/_sim/events', { event_type: 'update', data_type: 'workout', object_id: doc.id, user_id: userId });
    await eventually(
      'the update served',
      async () => {
        const events = await eventsOf(doc.id);
        return events.length === 2 && events.every((e) => e.status === 'done');
      },
      { timeoutMs: 15_000 },
    );
    assert.deepEqual((await eventsOf(doc.id)).map((e) => e.outcome), ['stored', 'stored']);
    assert.deepEqual(await stored('workout', doc.id), changed, 'the row holds the update, six days back');
  });
});

