import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  check,
  index,
  integer,
  jsonb,
  pgSchema,
  primaryKey,
  smallint,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

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
  },
  (t) => [check('users_status_check', sql`${t.status} in ('active', 'reauth_required', 'revoked')`)],
);

export const EVENT_STATUSES = ['queued', 'done', 'ignored', 'failed'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

export const webhookEvents = oura.table(
  'webhook_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    /** sha256 of the delivery's identifying content: Oura's retries of one event collapse here. */
    dedupe_key: text('dedupe_key').notNull().unique(),
    event_type: text('event_type').notNull(),
    data_type: text('data_type').notNull(),
    object_id: text('object_id').notNull(),
    user_id: text('user_id').notNull(),
    event_time: timestamp('event_time', { withTimezone: true, mode: 'string' }).notNull(),
    received_at: timestamp('received_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    status: text('status').$type<EventStatus>().notNull(),
    /** What happened: stored, deleted, gone (404), unknown_user, unsupported_data_type, … */
    outcome: text('outcome'),
    deliveries: integer('deliveries').notNull().default(1),
    processed_at: timestamp('processed_at', { withTimezone: true, mode: 'date' }),
  },
  (t) => [
    index('webhook_events_pending_idx').on(t.received_at).where(sql`${t.status} = 'queued'`),
    index('webhook_events_user_idx').on(t.user_id, t.data_type, t.object_id),
    check('webhook_events_status_check', sql`${t.status} in ('queued', 'done', 'ignored', 'failed')`),
  ],
);

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

