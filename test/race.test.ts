import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { mulberry32 } from '../src/sim/prng.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

const TYPES = ['daily_activity', 'workout', 'tag', 'sleep'] as const;

describe('randomized: events racing document changes', () => {
  let stack: Stack;
  before(async () => {
    // A document missing from a read soon after its create/update is re-checked once, here after 1 s.
    stack = await startStack({ label: 'race', env: { RECHECK_DELAY_S: '1' } });
    await stack.subscribeAll(TYPES);
  });
  after(async () => {
    await stack?.close();
  });

  test('every relation ends equal to the simulator\'s final state', async () => {
    const seed = Number(process.env.RACE_SEED ?? Date.now() % 1_000_000);
    const rand = mulberry32(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const users = [await stack.connectUser(), await stack.connectUser()];
    const live = new Map<string, { user: string; type: string; id: string }>();
    const pending: Promise<unknown>[] = [];

    for (let i = 0; i < 160; i++) {
      const existing = [...live.values()];
      const r = rand();
      let op: Promise<unknown>;
      if (existing.length < 3 || r < 0.35) {
        const user = pick(users);
        const type = pick(TYPES);
        op = stack.simJson('POST', `/_sim/users/${user}/documents/${type}`, { notify: true }).then((d) => {
          live.set(d.id, { user, type, id: d.id });
        });
        await op; // the id is needed before later operations can target it
      } else if (r < 0.8) {
        const d = pick(existing);
        op = stack.simJson('PATCH', `/_sim/users/${d.user}/documents/${d.type}/${d.id}`, { notify: true });
      } else {
        const d = pick(existing);
        live.delete(d.id);
        op = stack.simJson('DELETE', `/_sim/users/${d.user}/documents/${d.type}/${d.id}?notify=true`);
      }
      // A change racing a delete of the same document may find it gone: then it did not happen.
      pending.push(op.catch((err: Error) => {
        if (!/→ 404/.test(err.message)) throw err;
      }));
      // Sometimes fire the next change before this one's fetch can finish.
      if (rand() < 0.5) await new Promise((res) => setTimeout(res, Math.floor(rand() * 25)));
    }
    await Promise.all(pending);

    await eventually(
      `every event finished (seed ${seed})`,
      async () => {
        const { rows } = await stack.deps.pool.query<{ n: number }>(
          `select (select count(*)::int from oura.webhook_events where status not in ('done', 'ignored'))
                + (select count(*)::int from oura.webhook_inbox) as n`,
        );
        return rows[0]!.n === 0;
      },
      { timeoutMs: 60_000, intervalMs: 200 },
    );

    for (const user of users) {
      for (const type of TYPES) {
        const expected = (await stack.simJson('GET', `/_sim/users/${user}/documents/${type}`)) as Array<{ id: string }>;
        const { rows } = await stack.deps.pool.query<{ id: string; document: unknown }>(
          `select id, document from oura.${type} where user_id = $1`,
          [user],
        );
        const got = new Map(rows.map((r) => [r.id, r.document]));
        assert.deepEqual([...got.keys()].sort(), expected.map((d) => d.id).sort(), `${type} ids (seed ${seed})`);
        for (const d of expected) assert.ok(isDeepStrictEqual(got.get(d.id), d), `${type} ${d.id} content (seed ${seed})`);
      }
    }
  });
});
