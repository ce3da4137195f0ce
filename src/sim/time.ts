/** Calendar and timestamp helpers. Days are `YYYY-MM-DD`; "today" is the UTC day. */
import { DAY_MS, isoDay } from '../dates.js';

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2})?$/;

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

export { isoDay };

export function dayStartMs(day: string): number {
  return Date.parse(`${day}T00:00:00Z`);
}

export function addDays(day: string, n: number): string {
  return isoDay(dayStartMs(day) + n * DAY_MS);
}

export function todayUtc(nowMs = Date.now()): string {
  return isoDay(nowMs);
}

/** Days from `from` to `to` (may be negative). */
export function daysBetween(from: string, to: string): number {
  return Math.round((dayStartMs(to) - dayStartMs(from)) / DAY_MS);
}

/**
 * A wall-clock time `minutes` after midnight of `day` (negative or past 24h
 * rolls into the neighbouring day), as `YYYY-MM-DDTHH:MM:SS` plus `offset`
 * (`+02:00`, or '' for a local date-time without offset).
 */
export function wallClock(day: string, minutes: number, offset: string, seconds = 0): string {
  const ms = dayStartMs(day) + Math.round(minutes * 60 + seconds) * 1000;
  const d = new Date(ms);
  return `${isoDay(ms)}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}${offset}`;
}

/** A UTC instant in Oura's style: `2026-11-25T07:10:00+00:00`. */
export function utcDateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

/** `+02:00` → 120. */
export function offsetMinutes(offset: string): number {
  const m = /^([+-])(\d{2}):?(\d{2})$/.exec(offset);
  if (!m) return 0;
  const v = Number(m[2]) * 60 + Number(m[3]);
  return m[1] === '-' ? -v : v;
}

function validDate(y: number, mo: number, d: number): boolean {
  const dt = new Date(Date.UTC(y, mo - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === mo - 1 && dt.getUTCDate() === d;
}

export interface QueryInstant {
  /** The instant in epoch ms (no offset = UTC). */
  ms: number;
  /** The wall-clock reading as written, `YYYY-MM-DDTHH:MM:SS.mmm`, offset ignored. */
  wall: string;
  dateOnly: boolean;
}

/**
 * Parses a query value that may be a date (`2026-11-25`, read as the start of
 * that day) or an ISO date-time (`2026-11-25T07:00:00+02:00`). A `+` sent
 * unescaped arrives as a space and fails here, as it does at Oura.
 */
export function parseQueryInstant(value: string, allowDateOnly: boolean): QueryInstant | null {
  const dm = DATE_RE.exec(value);
  if (dm) {
    if (!allowDateOnly) return null;
    const [y, mo, d] = [Number(dm[1]), Number(dm[2]), Number(dm[3])];
    if (!validDate(y, mo, d)) return null;
    return { ms: Date.UTC(y, mo - 1, d), wall: `${value}T00:00:00.000`, dateOnly: true };
  }
  const m = DATE_TIME_RE.exec(value);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  if (!validDate(y, mo, d) || h > 23 || mi > 59 || s > 59) return null;
  const frac = (m[7] ?? '').padEnd(3, '0').slice(0, 3);
  const wall = `${m[1]}-${m[2]}-${m[3]}T${pad(h)}:${pad(mi)}:${pad(s)}.${frac}`;
  const off = m[8] === undefined || m[8] === 'Z' ? 0 : offsetMinutes(m[8].includes(':') ? m[8] : `${m[8].slice(0, 3)}:${m[8].slice(3)}`);
  const ms = Date.parse(`${wall}Z`) - off * 60_000;
  return Number.isNaN(ms) ? null : { ms, wall, dateOnly: false };
}

export { DAY_MS };
