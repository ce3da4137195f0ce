import { desc, eq, sql } from 'drizzle-orm';
import type { TimeSeriesType } from '../oura/registry.js';
import type { Db } from './index.js';
import { heartrate, ringBatteryLevel } from './schema/core.js';

type Row = Record<string, unknown>;

/** Time series rows: heart rate and ring battery samples. */
export function createSeriesRepo(db: Db) {
  return {
    /** Inserts samples, replacing any already stored at the same instant. */
    async upsert(type: TimeSeriesType, userId: string, rows: Row[]): Promise<number> {
      if (rows.length === 0) return 0;
      let n = 0;
      // Chunks keep each statement well under Postgres' 65535 parameters.
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
          await db
            .insert(heartrate)
            .values(values)
            .onConflictDoUpdate({ target: [heartrate.user_id, heartrate.timestamp, heartrate.source], set: { bpm: sql`excluded.bpm` } });
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
          await db
            .insert(ringBatteryLevel)
            .values(values)
            .onConflictDoUpdate({
              target: [ringBatteryLevel.user_id, ringBatteryLevel.timestamp],
              set: { level: sql`excluded.level`, charging: sql`excluded.charging`, in_charger: sql`excluded.in_charger` },
            });
          n += values.length;
        }
      }
      return n;
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
