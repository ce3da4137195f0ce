import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  customType,
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
