/**
 * The user population of `npm run bench:capacity`: every number of the model
 * is here, each with its reason, and `dayTrace` turns them into one day of
 * actions on the simulator's clock (ms after 00:00 UTC of the simulated day).
 *
 * Where Oura publishes nothing (how often the app syncs, how often users
 * edit), the number is an assumption, marked as such; the benchmark reports
 * what the trace it played contains, so a reader can weigh the result
 * against other assumptions.
 */
import type { DocumentType } from '../src/oura/registry.js';
import { createRng, type Rng } from '../src/sim/prng.js';
import { EVENTS_PER_USER, syncDocuments } from '../dev/trace.js';

const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** Oura's application budget the results are expressed in: 5 000 requests per 300 s, all users together. */
export const REAL_LIMIT = { limit: 5000, windowS: 300 };

export const MODEL = {
  /**
   * Where users live (UTC offset and share of users). Assumption: Oura's
   * market is mostly North America and Europe (a Finnish company whose
   * largest market is the US), with a smaller Asia-Pacific and rest-of-world
   * share. Time zones decide how the mornings pile up into a peak hour.
   */
  timeZones: [
    { offset: '-08:00', share: 0.14 },
    { offset: '-07:00', share: 0.05 },
    { offset: '-06:00', share: 0.08 },
    { offset: '-05:00', share: 0.13 },
    { offset: '-03:00', share: 0.04 },
    { offset: '+00:00', share: 0.08 },
    { offset: '+01:00', share: 0.16 },
    { offset: '+02:00', share: 0.1 },
    { offset: '+05:30', share: 0.05 },
    { offset: '+08:00', share: 0.05 },
    { offset: '+09:00', share: 0.06 },
    { offset: '+10:00', share: 0.06 },
  ],
  /**
   * The morning sync: the phone app uploads the night when the user opens it
   * after waking, local time ~ normal(7:00, 1 h), clamped to 5:00–9:30 (so the
   * morning's documents exist before the first daytime sync at 10:00). The
   * documents of the sync and Oura's rewrites of them (create-then-update
   * bursts) are bench:pipeline's morning sync: `syncDocuments` in
   * dev/trace.ts, whose numbers are listed and explained there (sleep,
   * daily_sleep, daily_readiness, daily_activity always; workout 35 %,
   * daily_stress 60 %, daily_spo2 50 %; 70 % rewritten 1–3 times 2–6 s apart).
   */
  wake: { meanH: 7, sdH: 1, minH: 5, maxH: 9.5 },
  /**
   * Daytime syncs: the app syncs in the background and when opened, 3–6 times
   * between 10:00 and 22:00 local (the range; uniform). Each sync
   * rewrites today's documents that move during the day: daily_activity
   * (steps, calories: nearly always changed since the last sync) and
   * daily_stress (daytime stress, changed on most syncs). Assumption.
   */
  daytime: {
    syncs: [3, 6] as [number, number],
    fromH: 10,
    toH: 22,
    changes: [
      { type: 'daily_activity' as DocumentType, p: 0.95 },
      { type: 'daily_stress' as DocumentType, p: 0.6 },
    ],
  },
  /**
   * Documents a user makes during the day, each at one of the daytime syncs
   * (per user-day). Assumption, in line with the simulator's history (which
   * has a workout on half of the days, counting the morning's).
   * - a workout logged or detected during the day, rewritten once a few
   *   seconds later in half the cases (Oura fills in calories);
   * - an enhanced tag (caffeine, alcohol, …) that the user adds;
   * - a session (meditation, breathing).
   */
  extras: [
    { type: 'workout' as DocumentType, perDay: 0.3, updateShare: 0.5 },
    { type: 'enhanced_tag' as DocumentType, perDay: 0.3, updateShare: 0 },
    { type: 'session' as DocumentType, perDay: 0.15, updateShare: 0.3 },
  ],
  /** Seconds between a document's creation and its rewrite within one sync (as the morning's bursts). */
  rewriteGapS: [2, 6] as [number, number],
  /**
   * Edits and deletes of older documents (2–10 days old), per user-day, at a
   * daytime sync: a user corrects a workout or tag, deletes a mis-detected
   * workout or a tag. Assumption: rare, a few a month per user.
   */
  older: {
    ageDays: [2, 10] as [number, number],
    edit: { perDay: 0.05, types: ['workout', 'enhanced_tag', 'session', 'sleep'] as DocumentType[] },
    delete: { perDay: 0.02, types: ['workout', 'enhanced_tag', 'session'] as DocumentType[] },
  },
  /** New connections: 0.5 % of users a day (the figure), at any time of day, each loading 90 days. */
  newConnections: { perUserDay: 0.005, backfillDays: 90 },
  /**
   * History every existing user has at the start of the day (in Oura and, as
   * already synced, in Postgres): long enough for edits of documents up to 10
   * days old and for reconciliation's recent days.
   */
  historyDays: 14,
  /**
   * Existing users' heart rate and battery in Oura start this many hours
   * before the day: the samples before were read (and stored) already, as by
   * a daily read; a read then costs what a daily read costs (one page each at
   * the simulator's page size), not a load of the whole history.
   */
  seriesUnreadH: 24,
  /**
   * Access-token lifetime: 24 h, the simulator's default (an assumption; a
   * longer lifetime only lowers the cost of refreshes). Existing users'
   * tokens are issued with lifetimes spread evenly over it, so their expiries
   * spread over the day as they would for users who connected at any time.
   */
  tokenLifetimeS: 86_400,
} as const;

/** Expected webhook events of one user-day (for a reader; the played trace reports its own count). */
export const EVENTS_PER_USER_DAY = (() => {
  const daytimeSyncs = (MODEL.daytime.syncs[0] + MODEL.daytime.syncs[1]) / 2;
  const daytime = daytimeSyncs * MODEL.daytime.changes.reduce((a, c) => a + c.p, 0);
  const extras = MODEL.extras.reduce((a, e) => a + e.perDay * (1 + e.updateShare), 0);
  return EVENTS_PER_USER + daytime + extras + MODEL.older.edit.perDay + MODEL.older.delete.perDay;
})();

export type Action =
  /** A new document; `key` names it for the updates that follow. */
  | { at: number; user: number; op: 'create'; type: DocumentType; key: number }
  /** A rewrite of the document created under `key`. */
  | { at: number; user: number; op: 'update'; type: DocumentType; key: number }
  /** A rewrite of the user's latest document of the type (today's, or yesterday's before the morning sync). */
  | { at: number; user: number; op: 'update-latest'; type: DocumentType }
  /** An edit or delete of one of the user's documents 2–10 days old. */
  | { at: number; user: number; op: 'edit-older' | 'delete-older'; type: DocumentType }
  /** A new user connects (a fresh Oura account with 90 days of history). */
  | { at: number; op: 'connect'; offset: string };

export interface DayTrace {
  users: number;
  /** Each user's UTC offset. */
  offsets: string[];
  /** Every action, by time; within one key, in order. */
  actions: Action[];
  /** Webhook events the actions make Oura send. */
  events: number;
  /**
   * Distinct (user, type) changes: a type changed within one sync counts once
   * however many documents and rewrites it had (one read serves them); edits
   * count one each; deletes none (the service needs no read to remove).
   */
  changes: number;
  /** Changes by simulated hour (UTC), for the peak hour's lower bound. */
  changesByHour: number[];
  newConnections: number;
}

function pickShare<T extends { share: number }>(rng: Rng, items: readonly T[]): T {
  let x = rng.next() * items.reduce((a, i) => a + i.share, 0);
  for (const i of items) if ((x -= i.share) < 0) return i;
  return items[items.length - 1]!;
}

function normal(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
}

function offsetMs(offset: string): number {
  const m = /^([+-])(\d{2}):(\d{2})$/.exec(offset)!;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60_000;
}

/** How many of something a user has in a day when the mean is `perDay` (< 1): 0 or 1, at random. */
const happens = (rng: Rng, perDay: number) => rng.chance(perDay);

/** One day of `users` users, seeded. */
export function dayTrace(users: number, seed: number): DayTrace {
  const rng = createRng(seed);
  const actions: Action[] = [];
  const offsets: string[] = [];
  const changesByHour = new Array<number>(24).fill(0);
  let key = 0;
  let events = 0;
  /**
   * A local time of day (h) → ms on the simulated UTC day, wrapped into
   * [0, 24 h), and at least 30 s before its end so that a sync's rewrites
   * (under 20 s) fall within the day, after their create.
   */
  const utc = (localH: number, offset: string) => Math.min(DAY_MS - 30_000, (((localH * HOUR_MS - offsetMs(offset)) % DAY_MS) + DAY_MS) % DAY_MS);
  const change = (at: number) => changesByHour[Math.floor(at / HOUR_MS) % 24]!++;

  for (let user = 0; user < users; user++) {
    const { offset } = pickShare(rng, MODEL.timeZones);
    offsets.push(offset);
    const { wake, daytime } = MODEL;
    const wakeH = Math.min(wake.maxH, Math.max(wake.minH, wake.meanH + wake.sdH * normal(rng)));
    const morningAt = utc(wakeH, offset);
    const synced = new Set<string>();
    for (const o of syncDocuments(rng, morningAt)) {
      const k = key++;
      const createAt = o.createAt;
      actions.push({ at: createAt, user, op: 'create', type: o.type, key: k });
      for (const u of o.updatesAt) actions.push({ at: u, user, op: 'update', type: o.type, key: k });
      events += 1 + o.updatesAt.length;
      if (!synced.has(o.type)) change(createAt);
      synced.add(o.type);
    }

    const n = rng.int(daytime.syncs[0], daytime.syncs[1]);
    const syncs = Array.from({ length: n }, () => utc(daytime.fromH + rng.next() * (daytime.toH - daytime.fromH), offset));
    for (const at of syncs) {
      for (const c of daytime.changes) {
        if (!rng.chance(c.p)) continue;
        actions.push({ at: at + rng.int(0, 1500), user, op: 'update-latest', type: c.type });
        events++;
        change(at);
      }
    }
    const gap = () => rng.int(MODEL.rewriteGapS[0] * 1000, MODEL.rewriteGapS[1] * 1000);
    for (const e of MODEL.extras) {
      if (!happens(rng, e.perDay)) continue;
      const at = rng.pick(syncs) + rng.int(0, 1500);
      const k = key++;
      actions.push({ at, user, op: 'create', type: e.type, key: k });
      events++;
      if (rng.chance(e.updateShare)) {
        actions.push({ at: at + gap(), user, op: 'update', type: e.type, key: k });
        events++;
      }
      change(at);
    }
    for (const [op, m] of [['edit-older', MODEL.older.edit], ['delete-older', MODEL.older.delete]] as const) {
      if (!happens(rng, m.perDay)) continue;
      const at = rng.pick(syncs) + rng.int(0, 1500);
      actions.push({ at, user, op, type: rng.pick(m.types) });
      events++;
      if (op === 'edit-older') change(at);
    }
  }

  const newConnections = Math.round(users * MODEL.newConnections.perUserDay);
  for (let i = 0; i < newConnections; i++) {
    actions.push({ at: rng.int(0, DAY_MS - 1), op: 'connect', offset: pickShare(rng, MODEL.timeZones).offset });
  }
  actions.sort((a, b) => a.at - b.at);
  const changes = changesByHour.reduce((a, b) => a + b, 0);
  return { users, offsets, actions, events, changes, changesByHour, newConnections };
}
