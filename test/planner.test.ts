import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { BudgetReport } from '../src/budget/report.js';
import type { RequestLogEntry } from '../src/sim/state.js';
import { TEST_SECRETS } from './helpers/env.js';
import { eventually, startStack, type Stack } from './helpers/stack.js';

/**
 * The budget planner end to end, on real Redis and Postgres, with the
 * simulator's request log as the record of what happened. Timers are
 * compressed to seconds.
 */

/** A time-series refresh reads heart rate once (its range is under 30 days); a reconciliation reads `tag` once. */
const SERIES_ROUTE = '/v2/usercollection/heartrate';
const RECONCILE_ROUTE = '/v2/usercollection/tag';

async function simRequests(stack: Stack, since = 0): Promise<RequestLogEntry[]> {
  return (await stack.simJson('GET', `/_sim/requests?since=${since}`)) as RequestLogEntry[];
}

async function budget(stack: Stack): Promise<BudgetReport> {
  const res = await fetch(`${stack.apiUrl}/admin/budget`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } });
  assert.equal(res.status, 200);
  return (await res.json()) as BudgetReport;
}

async function connect(stack: Stack, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const { id } = (await stack.simJson('POST', '/_sim/users', { historyDays: 1 })) as { id: string };
    ids.push(await stack.connectUser(id));
  }
  return ids;
}

describe('budget planner (real Redis and Postgres)', () => {
  const stacks: Stack[] = [];
  after(async () => {
    for (const s of stacks) await s.close();
  });

  test('with budget to spare the cadence rises to the minimum interval, and GET /admin/budget reports what happened', async () => {
    const stack = await startStack({
      label: 'planner-spare',
      env: {
        OURA_APP_RATE_LIMIT: '100/1',
        PLANNER_INTERVAL_MS: '300',
        TIMESERIES_MIN_INTERVAL_S: '2',
        TIMESERIES_INTERVAL_S: '60',
        RECONCILE_MIN_INTERVAL_S: '3',
        RECONCILE_INTERVAL_S: '120',
      },
    });
    stacks.push(stack);
    const users = await connect(stack, 4);
    const since = Date.now();
    // Every user refreshed a few times over: far more often than the targets (60 s, 120 s) ask.
    await eventually(
      'each user refreshed three times',
      async () => {
        const log = await simRequests(stack, since);
        return users.every(
          (u) =>
            log.filter((r) => r.userId === u && r.path === SERIES_ROUTE).length >= 3 && log.filter((r) => r.userId === u && r.path === RECONCILE_ROUTE).length >= 3,
        );
      },
      { timeoutMs: 45_000, intervalMs: 500 },
    );

    const before = await simRequests(stack);
    const report = await budget(stack);
    const afterwards = await simRequests(stack);
    const runs = (log: RequestLogEntry[], route: string) => log.filter((r) => r.path === route && users.includes(r.userId ?? '')).length;
    for (const [kind, route] of [
      ['timeseries', SERIES_ROUTE],
      ['reconcile', RECONCILE_ROUTE],
    ] as const) {
      const c = report.cadence[kind];
      // The runs it reports are the runs the simulator served (a run may finish between the reads).
      assert.ok(c.runsLastHour >= runs(before, route) - 2 && c.runsLastHour <= runs(afterwards, route), `${kind}: reported ${c.runsLastHour}, served ${runs(before, route)}–${runs(afterwards, route)}`);
      // The worst age it reports is the age of the user served longest ago:
      // by their last run, or by the one before while the last is still going.
      const served = users.map((u) => before.filter((r) => r.userId === u && r.path === route).map((r) => r.t).sort((a, b) => b - a));
      const ageS = (t: number) => (Date.now() - t) / 1000;
      const youngest = ageS(Math.min(...served.map((t) => t[0]!)));
      const oldest = ageS(Math.min(...served.map((t) => t[1] ?? t[0]!)));
      assert.ok(
        c.maxAgeS !== null && c.maxAgeS >= youngest - 3 && c.maxAgeS <= oldest + 3,
        `${kind}: reported max age ${c.maxAgeS} s, observed ${youngest.toFixed(1)} s (${oldest.toFixed(1)} s counting runs still going)`,
      );
      assert.equal(c.users, 4);
      assert.equal(c.overdue, 0, `${kind}: nobody past the target`);
      // Never more often than the minimum interval.
      for (const u of users) {
        const times = afterwards.filter((r) => r.userId === u && r.path === route).map((r) => r.t).sort((a, b) => a - b);
        const minGap = Math.min(...times.slice(1).map((t, i) => t - times[i]!));
        const minInterval = kind === 'timeseries' ? 2000 : 3000;
        assert.ok(minGap >= minInterval - 500, `${kind} of ${u}: runs ${minGap} ms apart, minimum ${minInterval}`);
      }
    }
    // Requests by purpose: what the simulator served, counted the service's way.
    const series = (log: RequestLogEntry[]) => log.filter((r) => r.path === SERIES_ROUTE || r.path.endsWith('/ring_battery_level')).length;
    const documents = (log: RequestLogEntry[]) =>
      log.filter((r) => r.path.startsWith('/v2/usercollection/') && !r.path.endsWith('/personal_info')).length - series(log);
    assert.ok(report.lastHour.timeseries >= series(before) - 4 && report.lastHour.timeseries <= series(afterwards), `time series: ${report.lastHour.timeseries} vs ${series(before)}–${series(afterwards)}`);
    assert.ok(report.lastHour.reconcile >= documents(before) - 32 && report.lastHour.reconcile <= documents(afterwards), `reconcile: ${report.lastHour.reconcile} vs ${documents(before)}–${documents(afterwards)}`);
    assert.equal(report.lastHour.live, 0, 'no webhook, no live request');
    assert.ok(report.capacity.users !== null && report.capacity.users > 0, 'a capacity estimate');
    assert.ok(report.capacity.perUserDay!.timeseries > 0 && report.capacity.perUserDay!.reconcile > 0);
  });

  test('under a saturating live load reconciliation keeps its floor, and a lane with none waits', async () => {
    const stack = await startStack({
      label: 'planner-floor',
      env: {
        OURA_APP_RATE_LIMIT: '40/1',
        BUDGET_FLOORS: 'backfill=0,timeseries=0,reconcile=0.1',
        // Callers enough to use the floor: about floor × N/W × 1 s (README, "The budget").
        REFRESH_CONCURRENCY: '4',
        PLANNER_INTERVAL_MS: '300',
        TIMESERIES_MIN_INTERVAL_S: '1',
        RECONCILE_MIN_INTERVAL_S: '1',
      },
    });
    stacks.push(stack);
    await connect(stack, 5);
    // Background work runs before the live load begins.
    await eventually('background work running', async () => (await simRequests(stack)).some((r) => r.path === RECONCILE_ROUTE), { timeoutMs: 20_000 });

    // Live work wants far more than the whole budget for 6 s.
    const start = Date.now();
    const end = start + 6000;
    let live = 0;
    await Promise.all(
      Array.from({ length: 24 }, async () => {
        while (Date.now() < end) {
          await stack.deps.limiter.acquire(null, { lane: 'live' });
          live++;
        }
      }),
    );
    const during = (await simRequests(stack, start + 1500)).filter((r) => r.t < end);
    const reconcile = during.filter((r) => r.path.startsWith('/v2/usercollection/') && r.path !== SERIES_ROUTE && !r.path.endsWith('ring_battery_level')).length;
    const series = during.filter((r) => r.path === SERIES_ROUTE || r.path.endsWith('ring_battery_level')).length;
    // 0.1 × 40 = 4 per window of 1.25 s (1 s and the limiter's margin) for reconciliation: about 14 in the 4.5 s counted.
    assert.ok(reconcile >= 8, `reconciliation kept its floor: ${reconcile} requests in 4.5 s`);
    assert.ok(reconcile <= 24, `and took little more: ${reconcile}`);
    assert.ok(series <= 3, `time series (no floor) waited: ${series}`);
    assert.ok(live >= 140, `live took the rest: ${live} permits in 6 s`);
  });
});
