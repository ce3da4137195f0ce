import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { eventually, startStack, type Stack } from './helpers/stack.js';

/**
 * Oura's event_time has one-second precision, so two changes of a document
 * within a second are delivered as the same event. When the repeat arrives
 * while the first delivery's read is under way, that read may hold the
 * document as it was before the second change: the event must be served
 * again, not marked done with the older version.
 */
describe('a delivery repeated while its document is being read', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ label: 'redeliver' });
    await stack.subscribeAll(['workout']);
  });
  after(async () => {
    await stack?.close();
  });

  test('the newer version is stored and the event ends done', async () => {
    const userId = await stack.connectUser();
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, {});
    const path = `/v2/usercollection/workout/${doc.id}`;
    // The next read of the document is answered as it is now, but only 1.5 s later.
    await stack.simJson('POST', '/_sim/faults', { delayMs: 1500, path, count: 1 });

    const event = { event_type: 'update', data_type: 'workout', object_id: doc.id, user_id: userId, event_time: new Date().toISOString() };
    const since = Date.now();
    await stack.simJson('POST', '/_sim/events', event);
    await eventually('the read under way', async () => stack.sim.state.requests.some((r) => r.path === path && r.t >= since));

    // Oura changes the document again within the same second and delivers the same event.
    await stack.simJson('PATCH', `/_sim/users/${userId}/documents/workout/${doc.id}`, {});
    const repeat = await stack.simJson('POST', '/_sim/events', event);
    assert.ok(repeat.deliveries.every((d: { status: number }) => d.status === 200), JSON.stringify(repeat));

    const done = await eventually('the event done', async () => {
      const { rows } = await stack.deps.pool.query<{ status: string; deliveries: number }>(
        'select status, deliveries from oura.webhook_events where object_id = $1',
        [doc.id],
      );
      return rows[0]?.status === 'done' ? rows : null;
    });
    assert.equal(done.length, 1);
    assert.equal(done[0]!.deliveries, 2);

    const latest = ((await stack.simJson('GET', `/_sim/users/${userId}/documents/workout`)) as Array<{ id: string }>).find((d) => d.id === doc.id);
    const { rows } = await stack.deps.pool.query<{ document: unknown }>('select document from oura.workout where id = $1', [doc.id]);
    assert.ok(!isDeepStrictEqual(latest, doc), 'the second change is observable');
    assert.ok(isDeepStrictEqual(rows[0]?.document, latest), 'the stored document is the newer version');
    assert.equal(stack.sim.state.requests.filter((r) => r.path === path).length, 2, 'read again after the repeat');
  });
});
