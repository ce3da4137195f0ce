import type pg from 'pg';
import { inTransaction } from './index.js';
import { specDescriptions } from './schema/comments.generated.js';

/**
 * What every table and column of schema `oura` means, as COMMENT ON: the
 * Oura spec's descriptions for the document and time-series fields
 * (comments.generated.ts, by `npm run gen:oura`), our own words for the rest.
 * `\d+ oura.daily_sleep` shows them; docs/schema.md is made from them
 * (`npm run gen:schema-doc`). Partitions share their parent's.
 */
export type SchemaComments = Record<string, { table: string; columns: Record<string, string> }>;

/** Columns every document table has beside the fields of its Oura schema. */
const DOCUMENT_COLUMNS: Record<string, string> = {
  id: "The document's id at Oura (unique per data type).",
  user_id: 'The Oura user the document belongs to (oura.users.id, oura.connected_users.id).',
  document: 'The document as Oura sent it (JSON); the typed columns copy its top-level fields.',
  fetched_at: 'When this document was last read from Oura: a re-read that changes nothing still moves it (oura.changes records only real changes).',
};

const SERIES_COLUMNS: Record<string, string> = {
  user_id: 'The Oura user the sample belongs to (oura.users.id, oura.connected_users.id).',
};

const USER_COLUMNS: Record<string, string> = {
  id: 'The Oura user id (personal_info.id), the user_id of webhooks and of every data row.',
  status: 'active; reauth_required (the user must connect again: Oura refused the refresh token or access); revoked (disconnected).',
  status_reason: 'Why the user is not active, when they are not.',
  scopes: 'OAuth scopes the user granted, space-separated.',
  personal_info: "The user's personal_info document from Oura (JSON), read when they connected.",
  connected_at: 'When the user first connected.',
  updated_at: 'When this row last changed.',
  last_webhook_at: 'When the last webhook event for this user arrived.',
  last_fetch_at: 'When a document of this user was last read from Oura.',
  reconciled_at: "When reconciliation last re-read this user's recent days.",
  series_refreshed_at: "When the user's time series (heart rate, ring battery) were last brought up to date.",
  series_latest_at: 'The newest time-series sample stored for the user.',
};

const OURS: SchemaComments = {
  users: {
    table: 'Connected Oura users and their OAuth tokens (encrypted). Partner backends read oura.connected_users instead.',
    columns: {
      ...USER_COLUMNS,
      access_token_enc: 'The access token, AES-256-GCM ciphertext under TOKEN_ENCRYPTION_KEY; never plaintext.',
      refresh_token_enc: 'The refresh token, AES-256-GCM ciphertext under TOKEN_ENCRYPTION_KEY; never plaintext.',
      token_expires_at: 'When the access token expires.',
      access_error: "Oura's last refusal for this user that retrying cannot fix (403 membership or scope, 426).",
      access_error_at: 'When access_error was recorded.',
      reconcile_runs: 'Reconciliations finished; every RECONCILE_SLOW_EVERY-th also re-reads the types that rarely change.',
      trouble_at: "The last 404 or failure among the user's webhook events: reconciliation looks at such users first.",
    },
  },
  connected_users: {
    table: 'Connected Oura users without their tokens: the view partner backends and oura_reader read.',
    columns: USER_COLUMNS,
  },
  webhook_events: {
    table: 'Every webhook event Oura announced, once per content however often delivered, with what became of it.',
    columns: {
      id: 'Event id, in order of arrival.',
      dedupe_key: "sha256 of the delivery's identifying content: Oura's repeats of an event collapse on it.",
      event_type: 'create, update or delete.',
      data_type: 'The Oura data type (the table the document goes to).',
      object_id: "The document's id at Oura.",
      user_id: 'The Oura user the event is about.',
      event_time: 'When Oura says the change happened.',
      received_at: 'When the first delivery of the event arrived.',
      status: 'queued, parked (waiting for the user to reconnect), done, ignored or failed.',
      outcome: 'What happened: stored, deleted, gone, gone_after_recheck, user_unknown, user_revoked, unsupported_data_type, …',
      deliveries: 'How many deliveries of this event arrived.',
      processed_at: 'When the event was finished.',
      recheck_at: 'After a 404 soon after a create or update: when the document is read once more.',
    },
  },
  webhook_inbox: {
    table: 'Webhook deliveries acknowledged and not yet admitted to oura.webhook_events (normally for milliseconds).',
    columns: {
      id: 'Delivery id, from the webhook_events sequence: the event keeps it.',
      event_type: 'create, update or delete.',
      data_type: 'The Oura data type.',
      object_id: "The document's id at Oura.",
      user_id: 'The Oura user the delivery is about.',
      event_time: 'When Oura says the change happened.',
      supported: 'False for a data type this service does not ingest: admitted as an ignored event.',
      received_at: 'When the delivery arrived.',
    },
  },
  changes: {
    table:
      'The change feed: one row per document created, updated or deleted, per batch of time-series samples that changed, and per event in a user\'s life; written with the data, only when the stored content changed. Read it in (txid, seq) order below pg_snapshot_xmin(pg_current_snapshot()) (README, "For partners").',
    columns: {
      seq: 'Order of the change within its transaction (and a unique id); alone it is not commit order.',
      txid: 'The transaction that made the change: with seq, the cursor to read the feed by.',
      user_id: 'The Oura user whose data changed.',
      kind: 'document, timeseries or user.',
      data_type: 'The document or time-series type (the table that changed); null for a user change.',
      op: 'create, update or delete (documents); update (time series); connected, backfill_completed, reauth_required or disconnected (users).',
      object_id: "The document's id (documents).",
      day: "The document's collection day, for types that have one.",
      range_start: 'The first sample that changed (time series).',
      range_end: 'The last sample that changed (time series).',
      changed_at: 'When the change was written.',
    },
  },
  partner_webhook_cursor: {
    table: 'How far the outbound webhooks have read oura.changes (one row).',
    columns: {
      id: 'Always 1.',
      txid: 'Transaction of the last change turned into a delivery.',
      seq: 'Sequence number of the last change turned into a delivery.',
      updated_at: 'When the cursor last moved.',
    },
  },
  partner_webhook_deliveries: {
    table: 'Outbound webhook messages to PARTNER_WEBHOOK_URL, one per change: pending, delivered or dead (after the last retry; replayable).',
    columns: {
      seq: 'The change (oura.changes.seq); the message id is msg_<seq>.',
      user_id: 'The Oura user the message is about: messages of one user are delivered in order.',
      event_type: 'The message type: document.created, timeseries.updated, user.connected, …',
      data: "The message's data, without the document (read when sending, if PARTNER_WEBHOOK_INCLUDE_DOCUMENT=true).",
      occurred_at: 'When the change happened (the message timestamp).',
      status: 'pending, delivered or dead.',
      attempts: 'Attempts made.',
      next_attempt_at: 'When the next attempt is due (pending).',
      locked_until: 'An attempt in flight holds the message until then.',
      last_status: "The partner's last HTTP status, if it answered.",
      last_error: 'Why the last attempt failed.',
      created_at: 'When the message was made from the change.',
      finished_at: 'When it was delivered or dead-lettered.',
    },
  },
  backfill_progress: {
    table: "Progress of each user's history load, per data type: a load resumes after its last finished window.",
    columns: {
      user_id: 'The Oura user being loaded.',
      data_type: 'The data type (a document type, heartrate or ring_battery_level).',
      status: 'running, done or failed.',
      range_start: 'First instant of the load (inclusive).',
      range_end: 'End of the load (exclusive).',
      cursor: 'Everything before this instant is stored.',
      windows_done: 'Windows of the range finished.',
      windows_total: 'Windows in the range.',
      items: 'Documents or samples stored by the load.',
      requests: 'Oura requests the load made.',
      error: 'Why the load failed, when it did.',
      started_at: 'When the load started.',
      updated_at: 'When the load last made progress.',
      finished_at: 'When the load finished.',
    },
  },
};

/** The comment of every table, view and column of schema oura. */
export function schemaComments(): SchemaComments {
  const all: SchemaComments = { ...OURS };
  for (const [name, d] of Object.entries(specDescriptions)) {
    const series = name === 'heartrate' || name === 'ring_battery_level';
    const what = series ? `Oura time series ${name}: one row per sample, partitioned by month of timestamp` : `Oura data type ${name}: one row per document`;
    all[name] = {
      table: `${what} (${d.schema} in the Oura API v2 spec).${d.table ? ` ${d.table}` : ''}`,
      columns: { ...d.columns, ...(series ? SERIES_COLUMNS : DOCUMENT_COLUMNS) },
    };
  }
  return all;
}

const quoteLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** One relation of schema oura as the catalog describes it. */
export interface RelationDoc {
  name: string;
  kind: 'table' | 'partitioned table' | 'view';
  comment: string | null;
  readerSelects: boolean | null;
  columns: Array<{ name: string; type: string; notNull: boolean; comment: string | null }>;
}

/** Every table and view of schema oura (partitions aside: they share their parent's columns), from the catalog. */
export async function describeSchema(pool: pg.Pool): Promise<RelationDoc[]> {
  const reader = (await pool.query(`select 1 from pg_roles where rolname = 'oura_reader'`)).rowCount === 1;
  const { rows } = await pool.query<{
    rel: string;
    kind: string;
    rel_comment: string | null;
    reader: boolean | null;
    col: string;
    type: string;
    not_null: boolean;
    col_comment: string | null;
  }>(
    `select c.relname as rel, c.relkind as kind, obj_description(c.oid, 'pg_class') as rel_comment,
            case when $1 then has_table_privilege('oura_reader', c.oid, 'SELECT') end as reader,
            a.attname as col, format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
            col_description(c.oid, a.attnum) as col_comment
       from pg_class c
       join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'oura'
       join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where c.relkind in ('r', 'p', 'v') and not c.relispartition
      order by c.relname, a.attnum`,
    [reader],
  );
  const out = new Map<string, RelationDoc>();
  for (const r of rows) {
    let rel = out.get(r.rel);
    if (!rel) {
      rel = {
        name: r.rel,
        kind: r.kind === 'v' ? 'view' : r.kind === 'p' ? 'partitioned table' : 'table',
        comment: r.rel_comment,
        readerSelects: r.reader,
        columns: [],
      };
      out.set(r.rel, rel);
    }
    rel.columns.push({ name: r.col, type: r.type, notNull: r.not_null, comment: r.col_comment });
  }
  return [...out.values()];
}

/**
 * Sets the comments where they differ from schemaComments() (so a start with
 * nothing to change writes nothing), in one transaction. Tables and columns
 * that do not exist (yet) are skipped. Returns how many comments it set.
 */
export async function applyComments(pool: pg.Pool): Promise<number> {
  const wanted = schemaComments();
  const statements: string[] = [];
  for (const r of await describeSchema(pool)) {
    const w = wanted[r.name];
    if (!w) continue;
    if (r.comment !== w.table) statements.push(`comment on ${r.kind === 'view' ? 'view' : 'table'} oura.${ident(r.name)} is ${quoteLiteral(w.table)}`);
    for (const c of r.columns) {
      const text = w.columns[c.name];
      if (text !== undefined && c.comment !== text) statements.push(`comment on column oura.${ident(r.name)}.${ident(c.name)} is ${quoteLiteral(text)}`);
    }
  }
  if (statements.length === 0) return 0;
  await inTransaction(pool, async (client) => {
    for (const statement of statements) await client.query(statement);
  });
  return statements.length;
}
