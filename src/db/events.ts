import { and, asc, eq, inArray, isNotNull, isNull, lt, lte, sql, type SQL } from 'drizzle-orm';
import type { Db } from './index.js';
import { webhookEvents, webhookInbox, type EventStatus } from './schema/core.js';

export interface IncomingEvent {
  event_type: string;
  data_type: string;
  object_id: string;
  event_time: string;
  user_id: string;
}

/**
 * Group commit of verified deliveries: one JSON parameter for the whole
 * batch, one append to oura.webhook_inbox (its only index is the primary
 * key). Deduplication, and whether the user is connected, are the intake
 * worker's and the event worker's questions, asked off the response path.
 * The rows are inserted in the order of the array, so the ids drawn from
 * the sequence ascend in that order (`order by ord`); recordDeliveries
 * sorts what RETURNING gives.
 */
const RECORD_DELIVERIES_SQL = `
  insert into oura.webhook_inbox (event_type, data_type, object_id, user_id, event_time, supported)
  select event_type, data_type, object_id, user_id, event_time::timestamptz, supported
  from rows from (json_to_recordset($1::json)
    as (event_type text, data_type text, object_id text, user_id text, event_time text, supported boolean)) with ordinality
    as t(event_type, data_type, object_id, user_id, event_time, supported, ord)
  order by ord
  returning id`;

/**
 * What names an event's content, so that Oura's retries of one delivery
 * collapse into one event: the hex sha256 of event type, data type, object
 * id, event time (ISO 8601 in UTC with milliseconds, as JavaScript's
 * toISOString writes it) and user id, joined by NUL bytes. Recorded rows
 * carry it as webhook_events.dedupe_key (the api computed it in JavaScript
 * before the inbox; test/webhook.test.ts checks both agree).
 */
const DEDUPE_KEY_SQL = `encode(sha256(
    convert_to(event_type, 'UTF8') || '\\x00'::bytea || convert_to(data_type, 'UTF8') || '\\x00'::bytea ||
    convert_to(object_id, 'UTF8') || '\\x00'::bytea ||
    convert_to(to_char(event_time at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'UTF8') || '\\x00'::bytea ||
    convert_to(user_id, 'UTF8')), 'hex')`;

/**
 * Moves deliveries from the inbox to webhook_events in one statement, so a
 * delivery is in exactly one of the two at any time. Deliveries of one
 * content (same dedupe key) become one event, the first's id: a new event
 * keeps its delivery's id. A repeat of a recorded event only bumps its
 * count (and, if that event was already served, queues it again). Returns
 * one row per event touched, and the number of deliveries moved.
 */
const ADMIT_DELIVERIES_SQL = `
  with moved as (
    delete from oura.webhook_inbox where id = any($1::bigint[])
    returning *, ${DEDUPE_KEY_SQL} as dedupe_key
  ), firsts as (
    select distinct on (dedupe_key) id, dedupe_key, event_type, data_type, object_id, user_id, event_time, supported, received_at,
           count(*) over (partition by dedupe_key) as deliveries
    from moved order by dedupe_key, id
  ), admitted as (
    insert into oura.webhook_events
      (id, dedupe_key, event_type, data_type, object_id, user_id, event_time, received_at, deliveries, status, outcome, processed_at)
    select id, dedupe_key, event_type, data_type, object_id, user_id, event_time, received_at, deliveries,
           case when supported then 'queued' else 'ignored' end,
           case when supported then null else 'unsupported_data_type' end,
           case when supported then null else now() end
    from firsts
    on conflict (dedupe_key) do update set
      deliveries = oura.webhook_events.deliveries + excluded.deliveries,
      status = case when oura.webhook_events.status = 'done' then 'queued' else oura.webhook_events.status end,
      outcome = case when oura.webhook_events.status = 'done' then null else oura.webhook_events.outcome end,
      processed_at = case when oura.webhook_events.status = 'done' then null else oura.webhook_events.processed_at end,
      recheck_at = case when oura.webhook_events.status = 'done' then null else oura.webhook_events.recheck_at end
    returning id, status, (xmax = 0) as inserted
  )
  select a.id, a.status, a.inserted, (select count(*) from moved)::int as moved from admitted a`;

export interface AdmittedDeliveries {
  /** Deliveries moved out of the inbox. */
  deliveries: number;
  /** Events recorded for the first time and queued for the workers. */
  queued: number[];
  /** Recorded events delivered again and (still, or again) queued. */
  repeats: number[];
  /** Events recorded as ignored (a data type we do not fetch). */
  ignored: number;
  /** Deliveries that repeated an event recorded before or in the same move. */
  duplicates: number;
}

export function createEventsRepo(db: Db) {
  const pool = db.$client;
  /** Queued events of one user and type that also meet `conds`. */
  const queuedOf = (userId: string, dataType: string, conds: SQL[], limit: number) =>
    db
      .select()
      .from(webhookEvents)
      .where(and(eq(webhookEvents.user_id, userId), eq(webhookEvents.data_type, dataType), eq(webhookEvents.status, 'queued'), ...conds))
      .limit(limit)
      .$dynamic();
  return {
    /**
     * Records verified deliveries in the inbox in one statement (group
     * commit); returns their inbox ids, in input order. `supported`: false for a data
     * type we do not fetch, admitted as an ignored event.
     */
    async recordDeliveries(batch: Array<{ event: IncomingEvent; supported: boolean }>): Promise<number[]> {
      // A named statement: Postgres plans it once per connection.
      const result = await pool.query<[string]>({
        name: 'oura_inbox_append',
        text: RECORD_DELIVERIES_SQL,
        rowMode: 'array',
        values: [
          JSON.stringify(
            batch.map(({ event: e, supported }) => ({ event_type: e.event_type, data_type: e.data_type, object_id: e.object_id, user_id: e.user_id, event_time: e.event_time, supported })),
          ),
        ],
      });
      if (result.rows.length !== batch.length) throw new Error(`recorded ${result.rows.length} of ${batch.length} deliveries`);
      return result.rows.map((r) => Number(r[0])).sort((x, y) => x - y);
    },

    /**
     * Moves these deliveries from the inbox to webhook_events (see
     * ADMIT_DELIVERIES_SQL). Deliveries no longer in the inbox (admitted
     * already, by another worker or the sweeper) are skipped.
     */
    async admitDeliveries(deliveryIds: number[]): Promise<AdmittedDeliveries> {
      const out: AdmittedDeliveries = { deliveries: 0, queued: [], repeats: [], ignored: 0, duplicates: 0 };
      if (deliveryIds.length === 0) return out;
      const result = await pool.query<{ id: string; status: EventStatus; inserted: boolean; moved: number }>({
        name: 'oura_inbox_admit',
        text: ADMIT_DELIVERIES_SQL,
        values: [`{${deliveryIds.join(',')}}`],
      });
      out.deliveries = result.rows[0]?.moved ?? 0;
      let inserted = 0;
      for (const r of result.rows) {
        if (r.inserted) inserted++;
        if (r.status === 'ignored') out.ignored++;
        else if (r.status === 'queued') (r.inserted ? out.queued : out.repeats).push(Number(r.id));
      }
      out.duplicates = out.deliveries - inserted;
      return out;
    },

    /**
     * Inbox rows recorded before `before`: deliveries whose intake job was
     * lost, for the sweeper. Reads only the `limit` oldest rows (ids grow
     * with time), so a sweep during a burst does not walk a long inbox of
     * fresh deliveries.
     */
    async staleDeliveries(before: Date, limit = 1000): Promise<number[]> {
      const rows = await db
        .select({ id: webhookInbox.id, received_at: webhookInbox.received_at })
        .from(webhookInbox)
        .orderBy(asc(webhookInbox.id))
        .limit(limit);
      return rows.filter((r) => r.received_at < before).map((r) => r.id);
    },

    /** Which of these ids are events still `queued` (a new event keeps its delivery's id). */
    async queuedAmong(ids: number[]): Promise<number[]> {
      if (ids.length === 0) return [];
      const rows = await db
        .select({ id: webhookEvents.id })
        .from(webhookEvents)
        .where(and(inArray(webhookEvents.id, ids), eq(webhookEvents.status, 'queued')));
      return rows.map((r) => r.id);
    },

    async get(id: number) {
      const rows = await db.select().from(webhookEvents).where(eq(webhookEvents.id, id)).limit(1);
      return rows[0] ?? null;
    },

    /** Marks queued events finished. Only queued rows change, so a replay never rewrites history. */
    async finish(ids: number[], status: Exclude<EventStatus, 'queued'>, outcome: string): Promise<void> {
      if (ids.length === 0) return;
      await db
        .update(webhookEvents)
        .set({ status, outcome, processed_at: new Date() })
        .where(and(inArray(webhookEvents.id, ids), eq(webhookEvents.status, 'queued')));
    },

    /**
     * Marks served events done, each only if no delivery of it arrived since it
     * was claimed (its `deliveries` count is unchanged): a repeat that came in
     * while the document was being fetched means Oura changed it again after
     * our read, so the event stays queued and is served once more. Returns the
     * ids marked.
     */
    async finishServed(claimed: Array<{ id: number; deliveries: number }>, outcome: string): Promise<number[]> {
      if (claimed.length === 0) return [];
      const result = await db.execute<{ id: string }>(sql`
        update oura.webhook_events e set status = 'done', outcome = ${outcome}, processed_at = now()
        from unnest(${`{${claimed.map((c) => c.id).join(',')}}`}::bigint[], ${`{${claimed.map((c) => c.deliveries).join(',')}}`}::int[]) as c(id, deliveries)
        where e.id = c.id and e.deliveries = c.deliveries and e.status = 'queued'
        returning e.id`);
      return result.rows.map((r) => Number(r.id));
    },

    /**
     * Queued events of one user and type recorded up to `upTo`: the events one
     * fetch can serve together. Events waiting for a re-check are not among
     * them (see rechecksFor).
     */
    async pendingFor(userId: string, dataType: string, upTo: Date, limit = 500) {
      return queuedOf(userId, dataType, [isNull(webhookEvents.recheck_at), lte(webhookEvents.received_at, upTo)], limit).orderBy(
        asc(webhookEvents.event_time),
        asc(webhookEvents.id),
      );
    },

    /** Queued events of one user and type waiting for a re-check (due or not), the earliest due first. */
    async rechecksFor(userId: string, dataType: string, limit = 500) {
      return queuedOf(userId, dataType, [isNotNull(webhookEvents.recheck_at)], limit).orderBy(asc(webhookEvents.recheck_at), asc(webhookEvents.id));
    },

    /** Sets queued events aside for one re-check of their object at `at`. */
    async scheduleRecheck(ids: number[], at: Date): Promise<void> {
      if (ids.length === 0) return;
      await db
        .update(webhookEvents)
        .set({ recheck_at: at })
        .where(and(inArray(webhookEvents.id, ids), eq(webhookEvents.status, 'queued')));
    },

    /** Holds events until the user reconnects. */
    async park(ids: number[]): Promise<void> {
      if (ids.length === 0) return;
      await db
        .update(webhookEvents)
        .set({ status: 'parked', outcome: 'waiting_for_reconnect' })
        .where(and(inArray(webhookEvents.id, ids), eq(webhookEvents.status, 'queued')));
    },

    /** Puts a user's parked events back in line; returns their ids. */
    async unpark(userId: string): Promise<number[]> {
      const rows = await db
        .update(webhookEvents)
        .set({ status: 'queued', outcome: null, recheck_at: null })
        .where(and(eq(webhookEvents.user_id, userId), eq(webhookEvents.status, 'parked')))
        .returning({ id: webhookEvents.id });
      return rows.map((r) => r.id);
    },

    /** Queued events older than `before`: candidates for the sweeper. */
    async staleQueued(before: Date, limit = 1000): Promise<number[]> {
      const rows = await db
        .select({ id: webhookEvents.id })
        .from(webhookEvents)
        .where(and(eq(webhookEvents.status, 'queued'), lt(webhookEvents.received_at, before)))
        .orderBy(asc(webhookEvents.id))
        .limit(limit);
      return rows.map((r) => r.id);
    },

    /**
     * Deletes up to `limit` events served (`done`) or ignored that arrived
     * before `before`, oldest first; returns how many. Queued, parked and
     * failed events stay. Walks the primary key from the oldest id, so each
     * call reads little more than what it deletes.
     */
    async pruneFinished(before: Date, limit = 10_000): Promise<number> {
      const result = await db.execute(sql`
        delete from oura.webhook_events where id in (
          select id from oura.webhook_events
          where status in ('done', 'ignored') and received_at < ${before.toISOString()}::timestamptz
          order by id limit ${limit})`);
      return result.rowCount ?? 0;
    },

    /** When the newest delivery was recorded (ids grow with time). */
    async lastReceivedAt(): Promise<Date | null> {
      const rows = await db
        .select({ t: webhookEvents.received_at })
        .from(webhookEvents)
        .orderBy(sql`${webhookEvents.id} desc`)
        .limit(1);
      return rows[0]?.t ?? null;
    },

    /** When the oldest queued event was recorded, re-checks aside (null: none queued): how far behind live work is. */
    async oldestQueuedAt(): Promise<Date | null> {
      const result = await db.execute<{ t: string }>(sql`
        select received_at as t from oura.webhook_events where status = 'queued' and recheck_at is null order by received_at limit 1`);
      const t = result.rows[0]?.t;
      return t ? new Date(t) : null;
    },

    /**
     * Work waiting by purpose, for the budget view and its gauges: queued live
     * events and the oldest one's arrival; backfill windows left and when the
     * oldest running backfill started.
     */
    async backlog(): Promise<{ liveEvents: number; liveOldest: Date | null; backfillWindows: number; backfillOldest: Date | null }> {
      const result = await db.execute<{ live: number; live_oldest: string | null; windows: number; bf_oldest: string | null }>(sql`
        select (select count(*)::int from oura.webhook_events where status = 'queued') as live,
               (select min(received_at) from oura.webhook_events where status = 'queued') as live_oldest,
               (select coalesce(sum(windows_total - windows_done), 0)::int from oura.backfill_progress where status = 'running') as windows,
               (select min(started_at) from oura.backfill_progress where status = 'running') as bf_oldest`);
      const r = result.rows[0]!;
      const d = (v: string | null) => (v ? new Date(v) : null);
      return { liveEvents: r.live, liveOldest: d(r.live_oldest), backfillWindows: r.windows, backfillOldest: d(r.bf_oldest) };
    },

    /** When the newest queued event of one user and type was recorded. */
    async newestPending(userId: string, dataType: string): Promise<Date | null> {
      const rows = await db
        .select({ t: sql<Date>`max(${webhookEvents.received_at})` })
        .from(webhookEvents)
        .where(
          and(
            eq(webhookEvents.user_id, userId),
            eq(webhookEvents.data_type, dataType),
            eq(webhookEvents.status, 'queued'),
            isNull(webhookEvents.recheck_at),
          ),
        );
      const t = rows[0]?.t;
      return t ? new Date(t) : null;
    },
  };
}
export type EventsRepo = ReturnType<typeof createEventsRepo>;
