import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { DOCUMENT_TYPES } from '../src/oura/registry.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

const LIMIT = 20;
const WINDOW_MS = 5000;

/** The most requests the log shows in any rolling window of `windowMs`. */
function maxInRollingWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe('app-wide rate limit shared by two worker processes', () => {
  let stack: Stack;

  before(async () => {
    // The simulator enforces the same 20/5 s; any request over it would be a 429.
    stack = await startStack({
      label: 'ratelimit',
      inProcessWorker: false,
      env: { OURA_APP_RATE_LIMIT: `${LIMIT}/${WINDOW_MS / 1000}` },
      sim: { appLimit: { limit: LIMIT, windowS: WINDOW_MS / 1000 } },
    });
  });
  after(async () => {
    await stack?.close();
  });

  test('never more than N requests in any rolling W seconds, and no 429', async () => {
    await stack.subscribeAll(DOCUMENT_TYPES);
    // Distinct (user, type) pairs: events of one pair would share fetches, and this test wants many requests.
    const users = [await stack.connectUser(), await stack.connectUser()];
    const workers = [stack.spawnProcess('worker'), stack.spawnProcess('worker')];
    let EVENTS = 0;
    for (const type of DOCUMENT_TYPES) {
      for (const userId of users) {
        await stack.simJson('POST', `/_sim/users/${userId}/documents/${type}`, { notify: true });
        EVENTS++;
      }
    }
    await eventually(
      'all documents stored',
      async () => {
        const { rows } = await stack.deps.pool.query<{ n: string }>(
          `select count(*) as n from oura.webhook_events where status = 'done'`,
        );
        return Number(rows[0]!.n) === EVENTS;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const log = (await stack.simJson('GET', '/_sim/requests')) as Array<{ t: number; status: number; path: string }>;
    const oura = log.filter((r) => r.path.startsWith('/v2/usercollection') || r.path.startsWith('/oauth/token'));
    assert.ok(oura.length >= EVENTS, `the simulator saw ${oura.length} requests`);
    const peak = maxInRollingWindow(
      oura.map((r) => r.t),
      WINDOW_MS,
    );
    assert.ok(peak <= LIMIT, `peak ${peak} requests in a rolling ${WINDOW_MS} ms window (limit ${LIMIT})`);
    assert.ok(peak >= LIMIT * 0.75, `the budget was used (peak ${peak})`);
    assert.deepEqual(
      oura.filter((r) => r.status === 429),
      [],
    );
    for (const w of workers) {
      w.kill('SIGTERM');
      const [code] = await once(w, 'exit');
      assert.equal(code, 0, 'worker exits cleanly on SIGTERM');
    }
  });
});
