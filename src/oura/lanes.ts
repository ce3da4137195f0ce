/**
 * The limiter's lanes, in order of priority. Live serves webhook events (and
 * the token and subscription calls, which are rare and which live work waits
 * on); backfill loads new connections' history; timeseries brings heart rate
 * and battery up to date; reconcile re-reads recent documents.
 */
export const LANES = ['live', 'backfill', 'timeseries', 'reconcile'] as const;
export type Lane = (typeof LANES)[number];
export type BackgroundLane = Exclude<Lane, 'live'>;

/** The floors used when none are configured (BUDGET_FLOORS). */
export const DEFAULT_FLOORS: Record<BackgroundLane, number> = { backfill: 0.05, timeseries: 0.1, reconcile: 0.05 };
