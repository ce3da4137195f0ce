/** Calendar arithmetic in UTC, as Oura's date parameters need it. */

export const DAY_MS = 86_400_000;

/** The start of the UTC day holding `ms`. */
export function utcMidnight(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/** `YYYY-MM-DD` of the UTC day holding `ms`. */
export function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
