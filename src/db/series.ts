import { desc, eq, sql } from 'drizzle-orm';
import type { TimeSeriesType } from '../oura/registry.js';
import { withUserChanges } from './changes.js';
import type { Db } from './index.js';
import { heartrate, ringBatteryLevel } from './schema/core.js';

type Row = Record<string, unknown>;

/** Time series rows: heart rate and ring battery samples. */
export function createSeriesRepo(db: Db) {
  return {
    /**
     * Inserts samples, replacing any already stored at the same instant with
     * other values, in one transaction; when any sample is new or changed,
     * records one change with the range of those samples.
     */
    async upsert(type: TimeSeriesType, userId: string, rows: Row[]): Promise<number> {
      if (rows.length === 0) return 0;
      return withUserChanges(db, userId, async (tx) => {
        const { n, first, last } = await upsertSamples(tx, type, userId, rows);
        return {
          result: n,
          changes: first && last ? [{ kind: 'timeseries' as const, op: 'update' as const, dataType: type, rangeStart: first, rangeEnd: last }] : [],
        };
      });
    },

    /** Timestamp of the newest stored sample, or null. */
    async latest(type: TimeSeriesType, userId: string): Promise<Date | null> {
      const table = type === 'heartrate' ? heartrate : ringBatteryLevel;
      const rows = await db
        .select({ t: table.timestamp })
        .from(table)
        .where(eq(table.user_id, userId))
        .orderBy(desc(table.timestamp))
        .limit(1);
      return rows[0] ? new Date(rows[0].t) : null;
    },

  };
}
export type SeriesRepo = ReturnType<typeof createSeriesRepo>;

/**
 * Writes samples in chunks (each statement well under Postgres' 65535
 * parameters); a sample stored with the same values is left as it is.
 * Returns how many samples were given (after removing repeats) and the
 * first and last instant of those new or changed.
 */
async function upsertSamples(tx: Db, type: TimeSeriesType, userId: string, rows: Row[]): Promise<{ n: number; first: string | null; last: string | null }> {
  let n = 0;
  let first: number | null = null;
  let last: number | null = null;
  const note = (written: Array<{ t: string }>) => {
    for (const w of written) {
      const ms = new Date(w.t).getTime();
      if (first === null || ms < first) first = ms;
      if (last === null || ms > last) last = ms;
    }
  };
  for (let i = 0; i < rows.length; i += 2000) {
    const chunk = rows.slice(i, i + 2000);
    if (type === 'heartrate') {
      const values = [
        ...new Map(
          chunk.map((r) => [
            `${r.timestamp}|${r.source}`,
            { user_id: userId, timestamp: String(r.timestamp), bpm: Number(r.bpm), source: String(r.source) },
          ]),
        ).values(),
      ];
      note(
        await tx
          .insert(heartrate)
          .values(values)
          .onConflictDoUpdate({
            target: [heartrate.user_id, heartrate.timestamp, heartrate.source],
            set: { bpm: sql`excluded.bpm` },
            setWhere: sql`${heartrate.bpm} is distinct from excluded.bpm`,
          })
          .returning({ t: heartrate.timestamp }),
      );
      n += values.length;
    } else {
      const values = [
        ...new Map(
          chunk.map((r) => [
            String(r.timestamp),
            {
              user_id: userId,
              timestamp: String(r.timestamp),
              level: Number(r.level),
              charging: (r.charging as boolean | null | undefined) ?? null,
              in_charger: (r.in_charger as boolean | null | undefined) ?? null,
            },
          ]),
        ).values(),
      ];
      note(
        await tx
          .insert(ringBatteryLevel)
          .values(values)
          .onConflictDoUpdate({
            target: [ringBatteryLevel.user_id, ringBatteryLevel.timestamp],
            set: { level: sql`excluded.level`, charging: sql`excluded.charging`, in_charger: sql`excluded.in_charger` },
            setWhere: sql`(${ringBatteryLevel.level}, ${ringBatteryLevel.charging}, ${ringBatteryLevel.in_charger})
              is distinct from (excluded.level, excluded.charging, excluded.in_charger)`,
          })
          .returning({ t: ringBatteryLevel.timestamp }),
      );
      n += values.length;
    }
  }
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return { n, first: iso(first), last: iso(last) };
}
