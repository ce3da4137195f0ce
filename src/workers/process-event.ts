import type { Logger } from 'pino';
import type { DocumentsRepo } from '../db/documents.js';
import type { EventsRepo } from '../db/events.js';
import type { UsersRepo } from '../db/users.js';
import type { UsageLog } from '../budget/usage.js';
import type { Metrics } from '../metrics.js';
import type { Config } from '../config.js';
import { DAY_MS, isoDay } from '../dates.js';
import { limiterTier, type DateRange, type OuraClient, type RequestOptions, type UserAuth } from '../oura/client.js';
import type { Limiter, Permit } from '../oura/limiter.js';
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
  /** Counts events served, for the live requests per event in GET /admin/budget. */
  usage?: Pick<UsageLog, 'record'>;
  log: Logger;
  config: Pick<Config, 'RECHECK_WINDOW_S' | 'RECHECK_DELAY_S'>;
}

export type EventOutcome = 'served' | 'already_finished' | 'parked' | 'user_unavailable' | 'unsupported_data_type' | 'recheck_pending';

type PendingEvent = Awaited<ReturnType<EventsRepo['pendingFor']>>[number];
/** A recorded webhook event, as the event worker read it. */
export type EventRow = NonNullable<Awaited<ReturnType<EventsRepo['get']>>>;
type Doc = Record<string, unknown>;

/** A collection read covers at most this many days back; older documents are read one by one. */
const MAX_COLLECTION_DAYS = 31;

/**
 * Oura does not document its page size. Until a paged read shows it (a page
 * followed by another is a full one), the cost of a collection read is
 * estimated with this many documents a page.
 */
const DEFAULT_PAGE_SIZE = 50;
let fullPageSize = 0;

/**
 * Serves one webhook event, together with every other queued event of the
 * same user and data type (the caller holds that pair's lock):
 *
 * 1. take a rate-limit permit (while it waits, more events may queue up);
 * 2. claim the queued events recorded so far; an object whose latest event is
 *    a delete is removed without a request;
 * 3. read what they name, as cheaply as the reads can be planned:
 *    - one object: one single-document read;
 *    - several: a collection read over the recent days and every known day
 *      (objects it does not return whose day it covers are gone); then, for
 *      objects still unread whose day we do not know (never stored), a
 *      collection read back to MAX_COLLECTION_DAYS when its estimated pages
 *      (documents stored in that range plus those objects, over the page
 *      size) are fewer than the single reads it replaces; single reads for
 *      whatever is left;
 * 4. store as we read: each read's documents are upserted and the events of
 *    the objects it returned marked done as soon as it returns, so documents
 *    land steadily even when the budget makes the reads slow. A 404 means
 *    gone (so a late update never resurrects a deleted document), except
 *    right after a create or update: see recheck below.
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
  try {
    if (event.recheck_at) return await recheck(deps, event, type, log);
    // A repeat delivered while its document was being fetched stays queued (see
    // finishServed): serve the pair again, a few times at most; the repeat's own
    // job, or the sweeper, takes what is left after that.
    for (let round = 1; ; round++) {
      const { left, rechecking } = await serveOnce(deps, event, type, log);
      // This job's own event waits for its re-check: the caller delays the job.
      if (rechecking.has(event.id)) return 'recheck_pending';
      if (left === 0 || round >= MAX_SERVE_ROUNDS) return 'served';
      log.debug({ left, round }, 'events delivered again while being served; serving them once more');
    }
  } catch (err) {
    if (!(err instanceof UserUnavailableError)) throw err;
    const ids = [...(await deps.events.pendingFor(event.user_id, type, new Date())), ...(await deps.events.rechecksFor(event.user_id, type))].map(
      (e) => e.id,
    );
    if (err.status === 'reauth_required') {
      await deps.events.park(ids);
      log.info({ events: ids.length }, 'events parked until the user reconnects');
      return 'parked';
    }
    await deps.events.finish(ids, 'ignored', `user_${err.status}`);
    return 'user_unavailable';
  }
}

const MAX_SERVE_ROUNDS = 3;

/** Serves the pair's pending events once; returns what became of them (see Tally). */
async function serveOnce(deps: ProcessEventDeps, event: EventRow, type: DocumentType, log: Logger): Promise<Tally> {
  const userId = event.user_id;
  // Across both runs of the work when a 401 makes withToken run it again.
  const tally: Tally = { requests: 0, left: 0, rechecking: new Set() };
  // Only deletes waiting? They need no request at all.
  const before = plan(await deps.events.pendingFor(userId, type, new Date()));
  if (before.toFetch.length === 0) {
    tally.left = await removeDeleted(deps, type, userId, before, new Set());
    return tally;
  }

  try {
    await deps.tokens.withToken(userId, async (auth) => {
      // The permit first: events recorded while it is awaited are claimed too.
      const permit = await deps.limiter.acquire(limiterTier(auth), { lane: 'live' });
      tally.requests++;
      const p = plan(await deps.events.pendingFor(userId, type, new Date()));
      if (p.all.length === 0) return; // another worker served them meanwhile
      const s = startServing(deps, type, userId, auth, p, permit, tally);
      if (p.toFetch.length > 1) await readCollections(s);
      await readSingles(s);
      tally.left += await removeDeleted(deps, type, userId, p, s.present);
      await deps.users.touchFetch(userId);
      log.info({ events: p.all.length, objects: p.toFetch.length, ...s.counts, requests: tally.requests }, 'documents fetched');
    });
  } finally {
    if (tally.requests > 0) deps.metrics?.eventRequests.inc(tally.requests);
  }
  return tally;
}

interface Tally {
  /** Requests spent (each permit counts, used or not). */
  requests: number;
  /** Claimed events left queued because Oura delivered them again meanwhile. */
  left: number;
  /** Claimed events set aside for a re-check. */
  rechecking: Set<number>;
}

/** One serving of a pair: what it claimed, what it has read so far, and what it spent. */
interface Serving {
  deps: ProcessEventDeps;
  type: DocumentType;
  userId: string;
  auth: UserAuth;
  plan: Plan;
  /** The permit taken before the claim, for the first request. */
  permit: Permit | null;
  /** Objects named by a create/update and not yet resolved. */
  open: Set<string>;
  /** Objects a read returned. */
  present: Set<string>;
  tally: Tally;
  counts: { stored: number; gone: number; recheck: number };
}

function startServing(
  deps: ProcessEventDeps,
  type: DocumentType,
  userId: string,
  auth: UserAuth,
  p: Plan,
  permit: Permit,
  tally: Tally,
): Serving {
  return { deps, type, userId, auth, plan: p, permit, open: new Set(p.toFetch), present: new Set(), tally, counts: { stored: 0, gone: 0, recheck: 0 } };
}

/** Options of the next request: the first uses the permit taken before the claim. */
function nextRequest(s: Serving): RequestOptions {
  if (s.permit) {
    const permit = s.permit;
    s.permit = null;
    return { purpose: 'live', permit };
  }
  s.tally.requests++;
  return { purpose: 'live' };
}

/** Upserts one read's documents and finishes the claimed events of the objects it returned. */
async function storeRead(s: Serving, docs: Doc[]): Promise<void> {
  if (docs.length === 0) return;
  await s.deps.documents.upsert(s.type, s.userId, docs);
  const ids = new Set(docs.map((d) => String(d.id)));
  for (const id of ids) {
    s.present.add(id);
    if (s.open.delete(id)) s.counts.stored++;
  }
  s.tally.left += await finishClaimed(s.deps, s.plan, ids, 'stored');
}

/**
 * Objects Oura did not return (a 404, or absent from a collection read that
 * covered their day). Gone, unless the object's latest event arrived within
 * RECHECK_WINDOW_S: Oura can leave out a document it announced moments ago,
 * so its events wait RECHECK_DELAY_S for one re-check (see recheck).
 */
async function notReturned(s: Serving, ids: string[]): Promise<void> {
  const { config } = s.deps;
  // Oura lacks what it announced: this user's next reconciliation moves up.
  if (ids.length > 0) await s.deps.users.markTrouble(s.userId);
  const recentSince = Date.now() - config.RECHECK_WINDOW_S * 1000;
  const recent = ids.filter((id) => s.plan.latest.get(id)!.received_at.getTime() > recentSince);
  await markGone(s, ids.filter((id) => !recent.includes(id)));
  if (recent.length === 0) return;
  for (const id of recent) s.open.delete(id);
  s.counts.recheck += recent.length;
  const recheckAt = new Date(Date.now() + config.RECHECK_DELAY_S * 1000);
  const eventIds = recent.flatMap((id) => s.plan.byObject.get(id)!.map((e) => e.id));
  await s.deps.events.scheduleRecheck(eventIds, recheckAt);
  for (const id of eventIds) s.tally.rechecking.add(id);
}

/** Removes objects Oura no longer has and finishes their events as gone. */
async function markGone(s: Serving, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  for (const id of ids) s.open.delete(id);
  await s.deps.documents.removeMany(s.type, s.userId, ids);
  s.counts.gone += ids.length;
  s.tally.left += await finishClaimed(s.deps, s.plan, new Set(ids), 'gone');
}

/** Reads a collection range page by page, storing each page as it arrives. */
async function readCollection(s: Serving, range: DateRange): Promise<void> {
  let previous = -1;
  for await (const page of s.deps.oura.listDocuments(s.auth, s.type, range, nextRequest(s))) {
    if (previous >= 0) {
      s.tally.requests++;
      fullPageSize = Math.max(fullPageSize, previous); // a page followed by another is a full one
    }
    previous = page.length;
    await storeRead(s, page);
  }
}

/**
 * The collection reads for several objects: the recent days and every known
 * day within MAX_COLLECTION_DAYS (what it lacks there is gone); then, for
 * objects never stored (day unknown) that it did not return, a read back to
 * MAX_COLLECTION_DAYS when its estimated pages (documents stored in that
 * range plus those objects, over the page size) are fewer than the single
 * reads it would replace.
 */
async function readCollections(s: Serving): Promise<void> {
  if (!documentTypes[s.type].dateField) {
    // The collection takes no dates: one read returns every document there is.
    await readCollection(s, {});
    return notReturned(s, [...s.open]);
  }
  const days = await s.deps.documents.daysOf(s.type, s.userId, s.plan.toFetch);
  const today = Date.now();
  const oldest = today - (MAX_COLLECTION_DAYS - 2) * DAY_MS;
  const knownDays = [...days.values()].map((d) => Date.parse(d)).filter((ms) => ms >= oldest);
  const start = isoDay(Math.min(today - DAY_MS, ...knownDays));
  await readCollection(s, { startDate: start, endDate: isoDay(today + 2 * DAY_MS) });
  await notReturned(
    s,
    [...s.open].filter((id) => {
      const day = days.get(id);
      return day !== undefined && day >= start;
    }),
  );

  const unknown = [...s.open].filter((id) => !days.has(id));
  const extStart = isoDay(today - MAX_COLLECTION_DAYS * DAY_MS);
  if (unknown.length < 2 || extStart >= start) return;
  const stored = await s.deps.documents.countInRange(s.type, s.userId, extStart, start);
  const pages = Math.max(1, Math.ceil((stored + unknown.length) / (fullPageSize || DEFAULT_PAGE_SIZE)));
  if (pages < unknown.length) await readCollection(s, { startDate: extStart, endDate: start });
}

/** One read per object still open; a 404 is handled by notReturned. */
async function readSingles(s: Serving): Promise<void> {
  for (const id of [...s.open]) {
    const doc = await s.deps.oura.getDocument(s.auth, s.type, id, nextRequest(s));
    if (doc) await storeRead(s, [doc]);
    else await notReturned(s, [id]);
  }
}

/**
 * The one re-check of objects Oura answered 404 for (or left out of a
 * collection read) right after announcing them, at background priority: a
 * collection read of the days around their events, and of the day stored
 * for any we hold. What it returns is stored. An object it lacks although
 * its stored day is inside the read is gone; one whose day the read could
 * not contain (never stored, or stored further back) gets a single read
 * first. Returns recheck_pending when none of the pair's re-checks is due.
 */
async function recheck(deps: ProcessEventDeps, event: EventRow, type: DocumentType, log: Logger): Promise<EventOutcome> {
  const userId = event.user_id;
  const waiting = await deps.events.rechecksFor(userId, type);
  const now = Date.now();
  const due = waiting.filter((e) => e.recheck_at!.getTime() <= now + 50);
  if (due.length === 0) return waiting.some((e) => e.id === event.id) ? 'recheck_pending' : 'already_finished';
  const objects = [...new Set(due.map((e) => e.object_id))];
  const days = await deps.documents.daysOf(type, userId, objects);
  const range = recheckRange(type, due, days, now);
  const found = new Set<string>();
  let requests = 0;
  try {
    await deps.tokens.withToken(userId, async (auth) => {
      // A re-check serves webhook events (purpose live) but waits in the first
      // background lane: it must not hold up first reads of new events.
      const opts: RequestOptions = { lane: 'backfill', purpose: 'live' };
      const store = async (docs: Doc[]) => {
        await deps.documents.upsert(type, userId, docs);
        for (const d of docs) found.add(String(d.id));
      };
      for await (const page of deps.oura.listDocuments(auth, type, range, opts)) {
        requests++;
        await store(page);
      }
      const covered = (id: string) => range.startDate === undefined || (days.has(id) && days.get(id)! >= range.startDate && days.get(id)! < range.endDate!);
      for (const id of objects.filter((o) => !found.has(o) && !covered(o))) {
        requests++;
        const doc = await deps.oura.getDocument(auth, type, id, opts);
        if (doc) await store([doc]);
      }
    });
  } finally {
    if (requests > 0) deps.metrics?.eventRequests.inc(requests);
  }
  // Every waiting event of a returned object is served, due or not.
  await finishClaimed(deps, plan(waiting), found, 'stored');
  const missing = objects.filter((id) => !found.has(id));
  await deps.documents.removeMany(type, userId, missing);
  await finishClaimed(deps, plan(due), new Set(missing), 'gone_after_recheck');
  log.info({ rechecked: objects.length, gone: missing.length, requests }, 'objects re-checked');
  return 'served';
}

/**
 * The days a re-check reads: a document's day is near its event's (its day
 * in the user's timezone, one day either side), or the day stored for it;
 * at most MAX_COLLECTION_DAYS back. Types without dates: the whole collection.
 */
function recheckRange(type: DocumentType, due: PendingEvent[], days: Map<string, string>, now: number): DateRange {
  if (!documentTypes[type].dateField) return {};
  const times = due.map((e) => Date.parse(e.event_time));
  const stored = [...days.values()].map((d) => Date.parse(d));
  const start = Math.max(Math.min(...times.map((t) => t - DAY_MS), ...stored), now - MAX_COLLECTION_DAYS * DAY_MS);
  const end = Math.max(...times.map((t) => t + 2 * DAY_MS), ...stored.map((d) => d + DAY_MS));
  return { startDate: isoDay(start), endDate: isoDay(end) };
}

interface Plan {
  all: PendingEvent[];
  /** Objects whose latest event is create/update: fetch them. */
  toFetch: string[];
  /** Objects whose latest event is a delete. */
  toRemove: string[];
  /** Each object's latest event. */
  latest: Map<string, PendingEvent>;
  /** Each object's claimed events. */
  byObject: Map<string, PendingEvent[]>;
}

function plan(pending: PendingEvent[]): Plan {
  const latest = new Map<string, PendingEvent>();
  const byObject = new Map<string, PendingEvent[]>();
  for (const e of pending) {
    latest.set(e.object_id, e); // ordered by event_time, id
    const list = byObject.get(e.object_id);
    if (list) list.push(e);
    else byObject.set(e.object_id, [e]);
  }
  const toFetch: string[] = [];
  const toRemove: string[] = [];
  for (const [id, e] of latest) (e.event_type === 'delete' ? toRemove : toFetch).push(id);
  return { all: pending, toFetch, toRemove, latest, byObject };
}

/**
 * Marks the claimed events of these objects done with `outcome`. Returns how
 * many stay queued because Oura delivered them again meanwhile.
 */
async function finishClaimed(deps: ProcessEventDeps, p: Plan, objects: Set<string>, outcome: string): Promise<number> {
  const claimed = [...objects].flatMap((id) => p.byObject.get(id) ?? []);
  if (claimed.length === 0) return 0;
  const done = new Set(await deps.events.finishServed(claimed.map((e) => ({ id: e.id, deliveries: e.deliveries })), outcome));
  deps.metrics?.eventsProcessed.inc({ outcome }, done.size);
  deps.usage?.record('events_served', done.size);
  const now = Date.now();
  for (const e of claimed) if (done.has(e.id)) deps.metrics?.ingestLatency.observe((now - e.received_at.getTime()) / 1000);
  return claimed.length - done.size;
}

/**
 * Removes the documents whose latest event is a delete, unless a read just
 * returned them (the read is newer than the event), and finishes those
 * events. Returns how many stay queued (delivered again meanwhile).
 */
async function removeDeleted(deps: ProcessEventDeps, type: DocumentType, userId: string, p: Plan, present: Set<string>): Promise<number> {
  const remove = p.toRemove.filter((id) => !present.has(id));
  if (remove.length === 0) return 0;
  await deps.documents.removeMany(type, userId, remove);
  return finishClaimed(deps, p, new Set(remove), 'deleted');
}
