import type { Config } from '../config.js';
import type { EventsRepo } from '../db/events.js';
import type { CadenceStats, UsersRepo } from '../db/users.js';
import { PURPOSES, type Purpose } from '../oura/client.js';
import type { UsageLog } from './usage.js';

/** Share of the daily budget the capacity estimate leaves free: retries, 429s, bursts. */
export const CAPACITY_HEADROOM = 0.1;

/** Requests a time-series refresh or a reconciliation costs when none has run yet to measure it. */
const ASSUMED_REQUESTS = { timeseries: 2, reconcile: 13 + 3 / 4 } as const;

export interface BudgetReport {
  /** The application budget: N requests per rolling W seconds, and what that is per day. */
  limit: { requests: number; windowS: number; perDay: number };
  activeUsers: number;
  /** Requests sent to Oura by purpose (every process), and webhook events served. */
  lastHour: Record<Purpose, number> & { total: number; eventsServed: number };
  lastDay: Record<Purpose, number> & { total: number; eventsServed: number };
  /** Live requests per webhook event served (null: no event served in the period). */
  liveRequestsPerEvent: { lastHour: number | null; lastDay: number | null };
  /** Work waiting, by purpose: how much, and how long the oldest has waited (seconds). */
  backlog: Record<'live' | 'backfill' | 'timeseries' | 'reconcile', { items: number; oldestWaitS: number | null; unit: string }>;
  /** The background cadence: the target, runs finished, and how long since each active user's last run. */
  cadence: Record<'timeseries' | 'reconcile', CadenceStats & { targetS: number; runsLastHour: number; runsLastDay: number; requestsPerRun: number | null }>;
  capacity: CapacityEstimate;
}

export interface CapacityEstimate {
  /** Users this app could serve at the current mix (null: no active user to measure). */
  users: number | null;
  /** Requests per user-day that estimate counts, by part. */
  perUserDay: { live: number; backfill: number; timeseries: number; reconcile: number; total: number } | null;
  method: string;
}

export const CAPACITY_METHOD =
  'users = daily budget × (1 − headroom) ÷ requests per user-day, where requests per user-day = ' +
  'live (live and token requests over the last day, per active user) + backfill (backfill requests over the last day, per active user) + ' +
  'time series (requests per refresh × refreshes a day at TIMESERIES_INTERVAL_S) + reconcile (requests per reconciliation × reconciliations a day at RECONCILE_INTERVAL_S). ' +
  'Background parts are counted at their targets, not at the cadence spare budget reached. Counts from a service up for less than a day cover less than a day.';

export interface BudgetSources {
  config: Pick<Config, 'OURA_APP_RATE_LIMIT' | 'TIMESERIES_INTERVAL_S' | 'RECONCILE_INTERVAL_S'>;
  usage: Pick<UsageLog, 'lastHour' | 'lastDay'>;
  users: Pick<UsersRepo, 'cadence'>;
  events: Pick<EventsRepo, 'backlog'>;
}

function byPurpose(counts: Record<string, number>): Record<Purpose, number> & { total: number; eventsServed: number } {
  const out = Object.fromEntries(PURPOSES.map((p) => [p, counts[`requests:${p}`] ?? 0])) as Record<Purpose, number>;
  return { ...out, total: PURPOSES.reduce((a, p) => a + out[p], 0), eventsServed: counts.events_served ?? 0 };
}

const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 1000) / 1000 : null);
const ageS = (d: Date | null, now: number) => (d ? Math.max(0, Math.round((now - d.getTime()) / 1000)) : null);

/** What GET /admin/budget and `cli budget` show: where the budget goes, the cadence reached, and the users it could serve. */
export async function budgetReport(src: BudgetSources, now = Date.now()): Promise<BudgetReport> {
  const { limit, windowS } = src.config.OURA_APP_RATE_LIMIT;
  const perDay = Math.floor((limit * 86_400) / windowS);
  const [hourCounts, dayCounts, backlog, ts, rc] = await Promise.all([
    src.usage.lastHour(now),
    src.usage.lastDay(now),
    src.events.backlog(),
    src.users.cadence('timeseries', src.config.TIMESERIES_INTERVAL_S),
    src.users.cadence('reconcile', src.config.RECONCILE_INTERVAL_S),
  ]);
  const lastHour = byPurpose(hourCounts);
  const lastDay = byPurpose(dayCounts);
  const cadenceOf = (kind: 'timeseries' | 'reconcile', stats: CadenceStats, targetS: number) => ({
    ...stats,
    targetS,
    runsLastHour: hourCounts[`runs:${kind}`] ?? 0,
    runsLastDay: dayCounts[`runs:${kind}`] ?? 0,
    requestsPerRun: ratio(lastDay[kind], dayCounts[`runs:${kind}`] ?? 0),
  });
  const cadence = {
    timeseries: cadenceOf('timeseries', ts, src.config.TIMESERIES_INTERVAL_S),
    reconcile: cadenceOf('reconcile', rc, src.config.RECONCILE_INTERVAL_S),
  };
  const activeUsers = ts.users;
  return {
    limit: { requests: limit, windowS, perDay },
    activeUsers,
    lastHour,
    lastDay,
    liveRequestsPerEvent: { lastHour: ratio(lastHour.live, lastHour.eventsServed), lastDay: ratio(lastDay.live, lastDay.eventsServed) },
    backlog: backlogOf(backlog, ts, rc, src.config, now),
    cadence,
    capacity: estimateCapacity(perDay, activeUsers, lastDay, cadence),
  };
}

/** The backlog alone (the metrics' gauges): work waiting by purpose, and the oldest wait. */
export async function budgetBacklog(src: Omit<BudgetSources, 'usage'>, now = Date.now()): Promise<BudgetReport['backlog']> {
  const [backlog, ts, rc] = await Promise.all([
    src.events.backlog(),
    src.users.cadence('timeseries', src.config.TIMESERIES_INTERVAL_S),
    src.users.cadence('reconcile', src.config.RECONCILE_INTERVAL_S),
  ]);
  return backlogOf(backlog, ts, rc, src.config, now);
}

function backlogOf(
  backlog: Awaited<ReturnType<EventsRepo['backlog']>>,
  ts: CadenceStats,
  rc: CadenceStats,
  config: BudgetSources['config'],
  now: number,
): BudgetReport['backlog'] {
  return {
    live: { items: backlog.liveEvents, oldestWaitS: ageS(backlog.liveOldest, now), unit: 'webhook events queued' },
    backfill: { items: backlog.backfillWindows, oldestWaitS: ageS(backlog.backfillOldest, now), unit: 'backfill windows left' },
    timeseries: { items: ts.overdue, oldestWaitS: overdueS(ts, config.TIMESERIES_INTERVAL_S), unit: 'users past the target' },
    reconcile: { items: rc.overdue, oldestWaitS: overdueS(rc, config.RECONCILE_INTERVAL_S), unit: 'users past the target' },
  };
}

/** How far past its target the user most behind is (0: nobody is). */
function overdueS(stats: CadenceStats, targetS: number): number | null {
  return stats.maxAgeS === null ? null : Math.max(0, stats.maxAgeS - targetS);
}

export function estimateCapacity(
  perDay: number,
  activeUsers: number,
  lastDay: Record<Purpose, number>,
  cadence: Record<'timeseries' | 'reconcile', { targetS: number; requestsPerRun: number | null }>,
): CapacityEstimate {
  if (activeUsers === 0) return { users: null, perUserDay: null, method: CAPACITY_METHOD };
  const round = (n: number) => Math.round(n * 100) / 100;
  const atTarget = (kind: 'timeseries' | 'reconcile') => (cadence[kind].requestsPerRun ?? ASSUMED_REQUESTS[kind]) * (86_400 / cadence[kind].targetS);
  const parts = {
    live: round((lastDay.live + lastDay.token) / activeUsers),
    backfill: round(lastDay.backfill / activeUsers),
    timeseries: round(atTarget('timeseries')),
    reconcile: round(atTarget('reconcile')),
  };
  const total = round(parts.live + parts.backfill + parts.timeseries + parts.reconcile);
  const users = total > 0 ? Math.floor((perDay * (1 - CAPACITY_HEADROOM)) / total) : null;
  return { users, perUserDay: { ...parts, total }, method: CAPACITY_METHOD };
}
