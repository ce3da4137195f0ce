import type { Logger } from 'pino';
import type { DocumentsRepo } from '../db/documents.js';
import type { EventsRepo } from '../db/events.js';
import type { UsersRepo } from '../db/users.js';
import type { Metrics } from '../metrics.js';
import type { OuraClient } from '../oura/client.js';
import type { Limiter } from '../oura/limiter.js';
import { documentTypes, isDocumentType, type DocumentType } from '../oura/registry.js';
import type { TokenService } from '../oura/tokens.js';
import { UserUnavailableError } from '../oura/tokens.js';

export interface ProcessEventDeps {
  events: EventsRepo;
  documents: DocumentsRepo;
  users: UsersRepo;
  oura: OuraClient;
  tokens: TokenService;
  limiter: Limiter;
  metrics?: Metrics;
  log: Logger;
}

export type EventOutcome = 'served' | 'already_finished' | 'parked' | 'user_unavailable' | 'unsupported_data_type';

type PendingEvent = Awaited<ReturnType<EventsRepo['pendingFor']>>[number];
/** A recorded webhook event, as the event worker read it. */
export type EventRow = NonNullable<Awaited<ReturnType<EventsRepo['get']>>>;
type Doc = Record<string, unknown>;

/** A collection read covers at most this many days; older documents are read one by one. */
const MAX_COLLECTION_DAYS = 31;
const DAY_MS = 86_400_000;

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Serves one webhook event, together with every other queued event of the
 * same user and data type (the caller holds that pair's lock):
 *
 * 1. take a rate-limit permit (while it waits, more events may queue up);
 * 2. claim the queued events recorded so far; an object whose latest event is
 *    a delete is removed without a request;
 * 3. one object → one single-document read; several → one collection read
 *    over their days (objects it does not return but whose day it covers are
 *    gone; others fall back to single reads);
 * 4. upsert what Oura returned, remove what it no longer has (a 404 means
 *    gone, so a late update never resurrects a deleted document), and mark
 *    exactly the claimed events done.
 *
 * Events recorded after the claim keep their own jobs and cause one more
 * fetch after this one.
 */
export async function processEvent(deps: ProcessEventDeps, event: EventRow): Promise<EventOutcome> {
  if (event.status !== 'queued') return 'already_finished';
  const log = deps.log.child({ eventId: event.id, userId: event.user_id, dataType: event.data_type });
  const type = event.data_type;
  if (!isDocumentType(type)) {
    await deps.events.finish([event.id], 'ignored', 'unsupported_data_type');
    return 'unsupported_data_type';
  }
  // A repeat delivered while its document was being fetched stays queued (see
  // finishServed): serve the pair again, a few times at most; the repeat's own
  // job, or the sweeper, takes what is left after that.
  for (let round = 1; ; round++) {
    const r = await serveOnce(deps, event, type, log);
    if (r.outcome !== 'served' || r.left === 0 || round >= MAX_SERVE_ROUNDS) return r.outcome;
    log.debug({ left: r.left, round }, 'events delivered again while being served; serving them once more');
  }
}

const MAX_SERVE_ROUNDS = 3;

async function serveOnce(
  deps: ProcessEventDeps,
  event: EventRow,
  type: DocumentType,
  log: Logger,
): Promise<{ outcome: EventOutcome; left: number }> {
  const userId = event.user_id;
  let left = 0;

  // Only deletes waiting? They need no request at all.
  const before = plan(await deps.events.pendingFor(userId, type, new Date()));
  if (before.toFetch.length === 0) {
    left = await applyRemovals(deps, type, userId, before, new Set());
    return { outcome: 'served', left };
  }

  let requests = 0;
  try {
    await deps.tokens.withToken(userId, async (token) => {
      const permit = await deps.limiter.acquire(token, { priority: 'live' });
      requests++;
      const p = plan(await deps.events.pendingFor(userId, type, new Date()));
      if (p.all.length === 0) return; // another worker served them meanwhile
      const fetched = new Map<string, Doc>();
      const gone = new Set<string>();
      let permitUsed = false;
      const permitted = () => {
        if (permitUsed) {
          requests++;
          return {};
        }
        permitUsed = true;
        return { permit };
      };

      if (p.toFetch.length > 1) {
        const days = await deps.documents.daysOf(type, userId, p.toFetch);
        const info = documentTypes[type];
        const today = Date.now();
        const oldest = today - (MAX_COLLECTION_DAYS - 2) * DAY_MS;
        const knownDays = [...days.values()].map((d) => Date.parse(d)).filter((ms) => ms >= oldest);
        const start = Math.min(today - DAY_MS, ...knownDays);
        const range = info.dateField ? { startDate: isoDay(start), endDate: isoDay(today + 2 * DAY_MS) } : {};
        let pages = 0;
        for await (const page of deps.oura.listDocuments(token, type, range, { priority: 'live', ...permitted() })) {
          if (pages++ > 0) requests++;
          for (const d of page) fetched.set(String(d.id), d);
        }
        // Not returned although the read covered its day: gone at Oura.
        for (const id of p.toFetch) {
          if (fetched.has(id)) continue;
          const day = days.get(id);
          if (!info.dateField || (day && Date.parse(day) >= start)) gone.add(id);
        }
      }
      for (const id of p.toFetch) {
        if (fetched.has(id) || gone.has(id)) continue;
        const doc = await deps.oura.getDocument(token, type, id, { priority: 'live', ...permitted() });
        if (doc) fetched.set(id, doc);
        else gone.add(id);
      }

      if (fetched.size > 0) await deps.documents.upsert(type, userId, [...fetched.values()]);
      left = await applyRemovals(deps, type, userId, p, new Set(fetched.keys()), gone);
      await deps.users.touchFetch(userId);
      log.info({ events: p.all.length, objects: p.toFetch.length, stored: fetched.size, gone: gone.size }, 'documents fetched');
    });
  } catch (err) {
    if (err instanceof UserUnavailableError) {
      const pending = await deps.events.pendingFor(userId, type, new Date());
      const ids = pending.map((e) => e.id);
      if (err.status === 'reauth_required') {
        await deps.events.park(ids);
        log.info({ events: ids.length }, 'events parked until the user reconnects');
        return { outcome: 'parked', left: 0 };
      }
      await deps.events.finish(ids, 'ignored', `user_${err.status}`);
      return { outcome: 'user_unavailable', left: 0 };
    }
    throw err;
  } finally {
    if (requests > 0) deps.metrics?.eventRequests.inc(requests);
  }
  return { outcome: 'served', left };
}

interface Plan {
  all: PendingEvent[];
  /** Objects whose latest event is create/update: fetch them. */
  toFetch: string[];
  /** Objects whose latest event is a delete. */
  toRemove: string[];
}

function plan(pending: PendingEvent[]): Plan {
  const latest = new Map<string, PendingEvent>();
  for (const e of pending) latest.set(e.object_id, e); // ordered by event_time, id
  const toFetch: string[] = [];
  const toRemove: string[] = [];
  for (const [id, e] of latest) (e.event_type === 'delete' ? toRemove : toFetch).push(id);
  return { all: pending, toFetch, toRemove };
}

/**
 * Removes deleted and gone documents and marks the claimed events done with
 * what happened to their object. A delete is not applied to a document the
 * read just returned: the read is newer than the event. Returns how many
 * claimed events stay queued because Oura delivered them again meanwhile.
 */
async function applyRemovals(
  deps: ProcessEventDeps,
  type: DocumentType,
  userId: string,
  p: Plan,
  present: Set<string>,
  gone: Set<string> = new Set(),
): Promise<number> {
  const remove = [...p.toRemove.filter((id) => !present.has(id)), ...gone];
  await deps.documents.removeMany(type, userId, remove);
  const byOutcome = new Map<string, number[]>();
  for (const e of p.all) {
    const outcome = present.has(e.object_id) ? 'stored' : gone.has(e.object_id) ? 'gone' : 'deleted';
    byOutcome.set(outcome, [...(byOutcome.get(outcome) ?? []), e.id]);
  }
  const finished = new Set<number>();
  for (const [outcome, ids] of byOutcome) {
    const claimed = p.all.filter((e) => ids.includes(e.id)).map((e) => ({ id: e.id, deliveries: e.deliveries }));
    const done = await deps.events.finishServed(claimed, outcome);
    for (const id of done) finished.add(id);
    deps.metrics?.eventsProcessed.inc({ outcome }, done.length);
  }
  const now = Date.now();
  for (const e of p.all) if (finished.has(e.id)) deps.metrics?.ingestLatency.observe((now - e.received_at.getTime()) / 1000);
  return p.all.length - finished.size;
}
