/**
 * The "morning sync" traces the pipeline benchmark replays through the
 * simulator, and the driver that plays one.
 *
 * A trace is data: for each object (one Oura document of one user) when it is
 * created and when Oura rewrites it. Users sync at random times within the
 * trace; at a sync the ring's night lands as sleep + daily_sleep +
 * daily_readiness + daily_activity (sometimes workouts, daily_stress,
 * daily_spo2) within a second or two, and most of those documents are then
 * updated 1–3 times a few seconds apart while Oura reprocesses the night.
 */
import type { DocumentType } from '../src/oura/registry.js';
import { createRng, type Rng } from '../src/sim/prng.js';

export interface TraceObject {
  /** Index of the trace user who owns it. */
  user: number;
  type: DocumentType;
  /** Milliseconds after the trace starts. */
  createAt: number;
  /** Milliseconds after the trace starts, increasing. */
  updatesAt: number[];
}

export interface Trace {
  name: string;
  users: number;
  durationMs: number;
  objects: TraceObject[];
  /** Webhook events the trace makes Oura send (a create or update each). */
  events: number;
}

/** What one user's sync holds; the expectations below are derived from these numbers. */
const ALWAYS: DocumentType[] = ['sleep', 'daily_sleep', 'daily_readiness', 'daily_activity'];
const SOMETIMES: Array<{ type: DocumentType; p: number }> = [
  { type: 'workout', p: 0.35 },
  { type: 'daily_stress', p: 0.6 },
  { type: 'daily_spo2', p: 0.5 },
];
/** Of the users with a workout, this share logged two (a collection read can serve both). */
const SECOND_WORKOUT = 0.25;
/** Documents of one sync land within this spread. */
const CREATE_SPREAD_MS = 1500;
/** Share of documents Oura rewrites after creating them, and how. */
const UPDATED_SHARE = 0.7;
const UPDATES_MIN = 1;
const UPDATES_MAX = 3;
const UPDATE_GAP_MS: [number, number] = [2000, 6000];
/** Syncs start early enough that their updates still land within the trace. */
const TAIL_MS = 10_000;

/** Expected webhook events of one user's sync (for calibrating the user count to a load). */
export const EVENTS_PER_USER = (() => {
  const objects = ALWAYS.length + SOMETIMES.reduce((a, s) => a + s.p * (s.type === 'workout' ? 1 + SECOND_WORKOUT : 1), 0);
  const perObject = 1 + UPDATED_SHARE * ((UPDATES_MIN + UPDATES_MAX) / 2);
  return objects * perObject;
})();

/** Users needed for `load` × the budget's rate over `durationMs`. */
export function usersForLoad(load: number, ratePerS: number, durationMs: number): number {
  return Math.max(1, Math.round((load * ratePerS * durationMs) / 1000 / EVENTS_PER_USER));
}

/**
 * The documents of one user's sync starting at `syncAt`: the night's types
 * (always, and sometimes), each created within CREATE_SPREAD_MS and
 * rewritten a few times by Oura afterwards. Times in ms on the trace's clock.
 */
export function syncDocuments(rng: Rng, syncAt: number): Array<{ type: DocumentType; createAt: number; updatesAt: number[] }> {
  const types = [...ALWAYS];
  for (const s of SOMETIMES) {
    if (!rng.chance(s.p)) continue;
    types.push(s.type);
    if (s.type === 'workout' && rng.chance(SECOND_WORKOUT)) types.push('workout');
  }
  return types.map((type) => {
    const createAt = syncAt + rng.int(0, CREATE_SPREAD_MS);
    const updatesAt: number[] = [];
    if (rng.chance(UPDATED_SHARE)) {
      let t = createAt;
      for (let k = rng.int(UPDATES_MIN, UPDATES_MAX); k > 0; k--) {
        t += rng.int(UPDATE_GAP_MS[0], UPDATE_GAP_MS[1]);
        updatesAt.push(t);
      }
    }
    return { type, createAt, updatesAt };
  });
}

export function morningSync(name: string, users: number, durationMs: number, seed: number): Trace {
  const rng = createRng(seed);
  const objects: TraceObject[] = [];
  const lastStart = Math.max(0, durationMs - TAIL_MS);
  for (let user = 0; user < users; user++) {
    const syncAt = rng.int(0, lastStart);
    for (const o of syncDocuments(rng, syncAt)) objects.push({ user, ...o });
  }
  objects.sort((a, b) => a.createAt - b.createAt);
  return { name, users, durationMs, objects, events: objects.reduce((a, o) => a + 1 + o.updatesAt.length, 0) };
}

export interface PlayedObject {
  userId: string;
  type: DocumentType;
  /** The simulator's document id, once created. */
  docId: string | null;
}

export interface PlayResult {
  startedAt: number;
  finishedAt: number;
  objects: PlayedObject[];
  /** Control calls that failed (the simulator answers only after its webhook was answered). */
  errors: string[];
  /** Worst lateness of a control call against its schedule, ms (a driver that cannot keep up shows here). */
  maxLagMs: number;
}

const sleepUntil = (t: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, t - Date.now())));

/**
 * Plays a trace against the simulator's control API: each create and update
 * is a /_sim call with `notify: true`, so the simulator changes the document
 * and sends the signed webhook, at the trace's times.
 */
export async function play(trace: Trace, simUrl: string, userIds: string[]): Promise<PlayResult> {
  const startedAt = Date.now() + 200;
  const errors: string[] = [];
  let maxLagMs = 0;
  const call = async (method: string, route: string, at: number): Promise<any> => {
    await sleepUntil(startedAt + at);
    maxLagMs = Math.max(maxLagMs, Date.now() - (startedAt + at));
    const res = await fetch(`${simUrl}${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ notify: true }),
    });
    const text = await res.text();
    if (res.status >= 300) throw new Error(`${method} ${route} → ${res.status}: ${text.slice(0, 200)}`);
    return JSON.parse(text);
  };
  const played: PlayedObject[] = trace.objects.map((o) => ({ userId: userIds[o.user]!, type: o.type, docId: null }));
  await Promise.all(
    trace.objects.map(async (o, i) => {
      const p = played[i]!;
      const base = `/_sim/users/${p.userId}/documents/${o.type}`;
      try {
        const doc = (await call('POST', base, o.createAt)) as { id: string };
        p.docId = doc.id;
        for (const at of o.updatesAt) await call('PATCH', `${base}/${doc.id}`, at);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }),
  );
  return { startedAt, finishedAt: Date.now(), objects: played, errors, maxLagMs };
}
