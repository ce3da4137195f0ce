import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  customType,
  date,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  smallint,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

/**
 * Text compared byte for byte (`COLLATE "C"`): for identifiers and keys, which
 * are matched and indexed but never sorted for people. Under the database's
 * locale every index comparison is a strcoll(); this halves the btree work on
 * the webhook acceptance path (bench:ingest, BENCHMARKS.md).
 */
const identifier = customType<{ data: string; driverData: string }>({
  dataType: () => 'text COLLATE "C"',
});

/** Everything partners read lives in the `oura` schema. */
export const oura = pgSchema('oura');

export const USER_STATUSES = ['active', 'reauth_required', 'revoked'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

export const users = oura.table(
  'users',
  {
    /** The Oura user id (personal_info.id), the same value webhooks carry as user_id. */
    id: text('id').primaryKey(),
    status: text('status').$type<UserStatus>().notNull().default('active'),
    /** Why the user is not active (e.g. a 403/426 from Oura, a refused refresh). */
    status_reason: text('status_reason'),
    /** AES-256-GCM ciphertexts, never plaintext (see src/crypto.ts). */
    access_token_enc: text('access_token_enc'),
    refresh_token_enc: text('refresh_token_enc'),
    token_expires_at: timestamp('token_expires_at', { withTimezone: true, mode: 'date' }),
    scopes: text('scopes'),
    personal_info: jsonb('personal_info'),
    connected_at: timestamp('connected_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    last_webhook_at: timestamp('last_webhook_at', { withTimezone: true, mode: 'date' }),
    last_fetch_at: timestamp('last_fetch_at', { withTimezone: true, mode: 'date' }),
    /** The last refusal Oura gave for this user that retrying cannot fix (403 membership/scope, 426 app too old). */
    access_error: text('access_error'),
    access_error_at: timestamp('access_error_at', { withTimezone: true, mode: 'date' }),
    /** When reconciliation last re-synced this user. */
    reconciled_at: timestamp('reconciled_at', { withTimezone: true, mode: 'date' }),
    /** Reconciliations finished: every RECONCILE_SLOW_EVERY-th one also re-reads the types that rarely change. */
    reconcile_runs: integer('reconcile_runs').notNull().default(0),
    /** When the time series (heart rate, ring battery) were last brought up to date. */
    series_refreshed_at: timestamp('series_refreshed_at', { withTimezone: true, mode: 'date' }),
    /** The newest time-series sample stored: the ring synced then, webhooks or not. */
    series_latest_at: timestamp('series_latest_at', { withTimezone: true, mode: 'date' }),
    /** The last 404 or failure among this user's webhook events: reconciliation looks at them first. */
    trouble_at: timestamp('trouble_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [check('users_status_check', sql`${t.status} in ('active', 'reauth_required', 'revoked')`)],
);

/** `parked`: waiting for the user to reconnect (refresh refused); re-queued on reconnect. */
export const EVENT_STATUSES = ['queued', 'parked', 'done', 'ignored', 'failed'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

export const webhookEvents = oura.table(
  'webhook_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    /** sha256 of the delivery's identifying content: Oura's retries of one event collapse here. */
    dedupe_key: identifier('dedupe_key').notNull().unique(),
    event_type: text('event_type').notNull(),
    data_type: identifier('data_type').notNull(),
    object_id: identifier('object_id').notNull(),
    user_id: identifier('user_id').notNull(),
    event_time: timestamp('event_time', { withTimezone: true, mode: 'string' }).notNull(),
    received_at: timestamp('received_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    status: text('status').$type<EventStatus>().notNull(),
    /** What happened: stored, deleted, gone (404), unknown_user, unsupported_data_type, … */
    outcome: text('outcome'),
    deliveries: integer('deliveries').notNull().default(1),
    processed_at: timestamp('processed_at', { withTimezone: true, mode: 'date' }),
    /**
     * Oura answered 404 for the object soon after a create or update: it is
     * read once more, by a collection read of the event's day, no earlier than
     * this. Null for every other event.
     */
    recheck_at: timestamp('recheck_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    index('webhook_events_pending_idx').on(t.received_at).where(sql`${t.status} = 'queued'`),
    // A user's events (disconnect, unpark) and a (user, type)'s queue (pendingFor).
    index('webhook_events_user_idx').on(t.user_id, t.data_type),
    check('webhook_events_status_check', sql`${t.status} in ('queued', 'parked', 'done', 'ignored', 'failed')`),
  ],
);

/**
 * Deliveries acknowledged and not yet admitted to webhook_events: the only
 * write of the webhook's acceptance path. An append with one index (the
 * primary key), where an insert into webhook_events updates four and checks
 * the dedupe key first; bench:ingest measured the difference (BENCHMARKS.md).
 * The intake worker moves rows from here to webhook_events, deduplicating
 * them there, and the sweeper moves any left behind. Ids come from
 * webhook_events' sequence, so a new event keeps its delivery's id.
 */
export const webhookInbox = oura.table('webhook_inbox', {
  id: bigint('id', { mode: 'number' })
    .primaryKey()
    .default(sql`nextval('oura.webhook_events_id_seq')`),
  event_type: text('event_type').notNull(),
  data_type: identifier('data_type').notNull(),
  object_id: identifier('object_id').notNull(),
  user_id: identifier('user_id').notNull(),
  event_time: timestamp('event_time', { withTimezone: true, mode: 'string' }).notNull(),
  /** False for a data type we do not fetch: admitted as an ignored event. */
  supported: boolean('supported').notNull(),
  received_at: timestamp('received_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

export const heartrate = oura.table(
  'heartrate',
  {
    user_id: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    timestamp: timestamp('timestamp', { withTimezone: true, mode: 'string' }).notNull(),
    bpm: smallint('bpm').notNull(),
    source: text('source').notNull(),
  },
  (t) => [primaryKey({ columns: [t.user_id, t.timestamp, t.source] })],
);

export const ringBatteryLevel = oura.table(
  'ring_battery_level',
  {
    user_id: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    timestamp: timestamp('timestamp', { withTimezone: true, mode: 'string' }).notNull(),
    level: smallint('level').notNull(),
    charging: boolean('charging'),
    in_charger: boolean('in_charger'),
  },
  (t) => [primaryKey({ columns: [t.user_id, t.timestamp] })],
);


export const BACKFILL_STATUSES = ['running', 'done', 'failed'] as const;
export type BackfillStatus = (typeof BACKFILL_STATUSES)[number];

/**
 * Progress of a user's historical load, per data type (documents and time
 * series). Windows before `cursor` are finished, so a crashed backfill resumes
 * at `cursor` without fetching them again.
 */
export const backfillProgress = oura.table(
  'backfill_progress',
  {
    user_id: text('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    data_type: text('data_type').notNull(),
    status: text('status').$type<BackfillStatus>().notNull(),
    /** First instant of the load (inclusive). */
    range_start: timestamp('range_start', { withTimezone: true, mode: 'date' }).notNull(),
    /** End of the load (exclusive). */
    range_end: timestamp('range_end', { withTimezone: true, mode: 'date' }).notNull(),
    /** Everything before this is stored. */
    cursor: timestamp('cursor', { withTimezone: true, mode: 'date' }).notNull(),
    windows_done: integer('windows_done').notNull().default(0),
    windows_total: integer('windows_total').notNull(),
    items: integer('items').notNull().default(0),
    requests: integer('requests').notNull().default(0),
    error: text('error'),
    started_at: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    finished_at: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [primaryKey({ columns: [t.user_id, t.data_type] })],
);

/** A Postgres xid8 (a 64-bit transaction id), read as its decimal text. */
const xid8 = customType<{ data: string; driverData: string }>({
  dataType: () => 'xid8',
});

export const CHANGE_KINDS = ['document', 'timeseries', 'user'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];
export const DOCUMENT_OPS = ['create', 'update', 'delete'] as const;
export const USER_OPS = ['connected', 'backfill_completed', 'reauth_required', 'disconnected'] as const;
export type ChangeOp = (typeof DOCUMENT_OPS)[number] | (typeof USER_OPS)[number];

/**
 * The change feed (src/db/changes.ts): one row per document created, updated
 * or deleted, per batch of time-series samples that changed, and per event in
 * a user's life (connected, backfill completed, reauth required,
 * disconnected). Written in the transaction that changed the data, and only
 * when the stored content changed. Read in (txid, seq) order, only below the
 * oldest transaction still running: see changes.ts for why that never skips.
 */
export const changes = oura.table(
  'changes',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    txid: xid8('txid')
      .notNull()
      .default(sql`pg_current_xact_id()`),
    user_id: identifier('user_id').notNull(),
    kind: text('kind').$type<ChangeKind>().notNull(),
    /** The document or time-series type; null for a user change. */
    data_type: text('data_type'),
    op: text('op').$type<ChangeOp>().notNull(),
    /** The document's id (documents only). */
    object_id: text('object_id'),
    /** The document's collection day, for types that have one. */
    day: date('day', { mode: 'string' }),
    /** The first and last sample that changed (time series only). */
    range_start: timestamp('range_start', { withTimezone: true, mode: 'string' }),
    range_end: timestamp('range_end', { withTimezone: true, mode: 'string' }),
    /** When the change was written (after the user's lock: never earlier than the user's previous change). */
    changed_at: timestamp('changed_at', { withTimezone: true, mode: 'date' })
      .notNull()
      .default(sql`statement_timestamp()`),
  },
  (t) => [
    index('changes_cursor_idx').on(t.txid, t.seq),
    // A user's changes: deleting a user, and partners reading one user's feed.
    index('changes_user_idx').on(t.user_id, t.txid, t.seq),
    index('changes_changed_at_idx').using('brin', t.changed_at),
    check('changes_kind_check', sql`${t.kind} in ('document', 'timeseries', 'user')`),
    check(
      'changes_op_check',
      sql`(${t.kind} = 'document' and ${t.op} in ('create', 'update', 'delete') and ${t.object_id} is not null)
        or (${t.kind} = 'timeseries' and ${t.op} = 'update' and ${t.range_start} is not null)
        or (${t.kind} = 'user' and ${t.op} in ('connected', 'backfill_completed', 'reauth_required', 'disconnected'))`,
    ),
  ],
);

/** How far the outbound webhooks have read the change feed: one row. */
export const partnerWebhookCursor = oura.table(
  'partner_webhook_cursor',
  {
    id: smallint('id').primaryKey().default(1),
    txid: xid8('txid').notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    updated_at: timestamp('updated_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [check('partner_webhook_cursor_one_row', sql`${t.id} = 1`)],
);

export const PARTNER_DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;
export type PartnerDeliveryStatus = (typeof PARTNER_DELIVERY_STATUSES)[number];

/**
 * One outbound webhook message per change read from the feed (its webhook-id
 * is msg_<seq>): pending until the partner answers 2xx, retried on a
 * schedule, dead after the last attempt until replayed.
 */
export const partnerWebhookDeliveries = oura.table(
  'partner_webhook_deliveries',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
    user_id: identifier('user_id').notNull(),
    event_type: text('event_type').notNull(),
    /** The message's `data` (ids, type, day or range; never the document, which is read when sending). */
    data: jsonb('data').notNull(),
    occurred_at: timestamp('occurred_at', { withTimezone: true, mode: 'date' }).notNull(),
    status: text('status').$type<PartnerDeliveryStatus>().notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    next_attempt_at: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    locked_until: timestamp('locked_until', { withTimezone: true, mode: 'date' }),
    last_status: integer('last_status'),
    last_error: text('last_error'),
    created_at: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    finished_at: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    // The claim: each user's head of line (a loose index scan), and whether one of the user's is in flight.
    index('partner_webhook_deliveries_pending_idx').on(t.user_id, t.seq).where(sql`${t.status} = 'pending'`),
    index('partner_webhook_deliveries_in_flight_idx').on(t.user_id).where(sql`${t.status} = 'pending' and ${t.locked_until} is not null`),
    // The metrics: the backlog and its oldest message.
    index('partner_webhook_deliveries_backlog_idx').on(t.seq).where(sql`${t.status} = 'pending'`),
    // Retention, and deleting a user.
    index('partner_webhook_deliveries_finished_idx').on(t.status, t.finished_at).where(sql`${t.status} <> 'pending'`),
    index('partner_webhook_deliveries_user_idx').on(t.user_id),
    check('partner_webhook_deliveries_status_check', sql`${t.status} in ('pending', 'delivered', 'dead')`),
  ],
);
