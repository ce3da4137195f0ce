import { and, eq, gte, inArray, lt, notInArray, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { documentTypes, type DocumentType } from '../oura/registry.js';
import { withUserChanges, type ChangeInput } from './changes.js';
import type { Db } from './index.js';
import { documentTables } from './schema/documents.generated.js';

type Row = Record<string, unknown>;

/**
 * Maps a document as Oura sent it to its row: every top-level field of the
 * type's schema in its own column, the whole document in `document`.
 */
export function toRow(type: DocumentType, userId: string, doc: Record<string, unknown>): Row {
  const info = documentTypes[type];
  const row: Row = { id: doc.id, user_id: userId, document: doc, fetched_at: new Date() };
  for (const field of info.fields) {
    if (field === 'id') continue;
    const shape = info.shape.properties[field]!;
    let v = doc[field] ?? null;
    // Postgres bigint refuses fractions; the exact value stays in `document`.
    if (shape.kind === 'integer' && typeof v === 'number' && !Number.isInteger(v)) v = Math.round(v);
    if (shape.kind === 'string' && shape.format === 'date' && typeof v === 'string') v = v.slice(0, 10);
    row[field] = v;
  }
  return row;
}

/** The column holding a document type's collection day, if it has one. */
function dayColumnOf(type: DocumentType): PgColumn | null {
  const field = documentTypes[type].dateField;
  return field ? (documentTables[type] as unknown as Record<string, PgColumn>)[field]! : null;
}

function deletedColumns(type: DocumentType) {
  const table = documentTables[type];
  const day = dayColumnOf(type);
  return { id: table.id, day: day ? sql<string | null>`${day}::text` : sql<null>`null` };
}

function deletions(type: DocumentType, rows: Array<{ id: string; day: string | null }>): ChangeInput[] {
  return rows.map((r) => ({ kind: 'document', op: 'delete', dataType: type, objectId: r.id, day: r.day }));
}

export function createDocumentsRepo(db: Db) {
  return {
    /**
     * Inserts or replaces documents of one type for one user, and records in
     * the change feed each one created or whose content changed. A document
     * that comes back the same is not rewritten: only its fetched_at moves.
     * Returns how many documents were written or confirmed.
     */
    async upsert(type: DocumentType, userId: string, docs: Array<Record<string, unknown>>): Promise<number> {
      if (docs.length === 0) return 0;
      const table = documentTables[type];
      // One row per id (the last wins): Postgres refuses to update a row twice in one statement.
      const unique = [...new Map(docs.map((d) => [String(d.id), d])).values()];
      const rows = unique.map((d) => toRow(type, userId, d));
      const columns = table as unknown as Record<string, PgColumn>;
      const set: Record<string, unknown> = {};
      for (const key of Object.keys(rows[0]!)) {
        if (key === 'id') continue;
        set[key] = sql.raw(`excluded.${JSON.stringify(columns[key]!.name)}`);
      }
      // Changed: the document, or a column made from it (a column added later, a conversion fixed).
      const compared = Object.keys(set).filter((key) => key !== 'fetched_at' && key !== 'user_id');
      const changedRow = sql`(${sql.join(
        compared.map((key) => sql`${columns[key]!}`),
        sql`, `,
      )}) is distinct from (${sql.raw(compared.map((key) => `excluded.${JSON.stringify(columns[key]!.name)}`).join(', '))})`;
      const dayColumn = dayColumnOf(type);
      return withUserChanges(db, userId, async (tx) => {
        const written = await tx
          .insert(table)
          .values(rows as never)
          .onConflictDoUpdate({ target: table.id, set: set as never, setWhere: changedRow })
          .returning({ id: table.id, created: sql<boolean>`(xmax = 0)`, day: dayColumn ? sql<string | null>`${dayColumn}::text` : sql<null>`null` });
        const changed = new Set(written.map((r) => r.id));
        const same = rows.map((r) => String(r.id)).filter((id) => !changed.has(id));
        if (same.length > 0) {
          await tx
            .update(table)
            .set({ fetched_at: new Date() } as never)
            .where(and(eq(table.user_id, userId), inArray(table.id, same)));
        }
        return {
          result: rows.length,
          changes: written.map((r) => ({ kind: 'document' as const, op: r.created ? ('create' as const) : ('update' as const), dataType: type, objectId: r.id, day: r.day })),
        };
      });
    },

    /** A stored document as Oura sent it; null when there is none. */
    async get(type: DocumentType, userId: string, id: string): Promise<Record<string, unknown> | null> {
      const table = documentTables[type];
      const rows = await db
        .select({ document: table.document })
        .from(table)
        .where(and(eq(table.user_id, userId), eq(table.id, id)));
      return (rows[0]?.document as Record<string, unknown> | undefined) ?? null;
    },

    /** The day (collection date field) of stored documents, by id. */
    async daysOf(type: DocumentType, userId: string, ids: string[]): Promise<Map<string, string>> {
      const column = dayColumnOf(type);
      if (!column || ids.length === 0) return new Map();
      const table = documentTables[type];
      const rows = await db
        .select({ id: table.id, day: column })
        .from(table)
        .where(and(eq(table.user_id, userId), inArray(table.id, ids)));
      return new Map(rows.filter((r) => r.day).map((r) => [r.id, String(r.day)]));
    },

    /** How many of the user's documents of a type are stored with a collection date in [startDay, endDay). */
    async countInRange(type: DocumentType, userId: string, startDay: string, endDay: string): Promise<number> {
      const table = documentTables[type];
      const column = dayColumnOf(type);
      const conds = [eq(table.user_id, userId)];
      if (column) conds.push(gte(column, startDay), lt(column, endDay));
      const rows = await db.select({ n: sql<number>`count(*)::int` }).from(table).where(and(...conds));
      return rows[0]?.n ?? 0;
    },

    /** Removes several documents of one user and type. */
    async removeMany(type: DocumentType, userId: string, ids: string[]): Promise<number> {
      if (ids.length === 0) return 0;
      const table = documentTables[type];
      return withUserChanges(db, userId, async (tx) => {
        const rows = await tx
          .delete(table)
          .where(and(eq(table.user_id, userId), inArray(table.id, ids)))
          .returning(deletedColumns(type));
        return { result: rows.length, changes: deletions(type, rows) };
      });
    },

    /**
     * Removes the user's documents of a type whose collection date falls in
     * [startDay, endDay) and that are not in `keep`: what Oura no longer
     * returns for a window it was asked about. Types without a date field
     * (ring_configuration) compare against every stored document.
     */
    async removeMissing(type: DocumentType, userId: string, window: { startDay: string; endDay: string } | null, keep: string[]): Promise<number> {
      const table = documentTables[type];
      const column = dayColumnOf(type);
      const conds = [eq(table.user_id, userId)];
      if (column && window) conds.push(gte(column, window.startDay), lt(column, window.endDay));
      if (keep.length > 0) conds.push(notInArray(table.id, keep));
      return withUserChanges(db, userId, async (tx) => {
        const rows = await tx.delete(table).where(and(...conds)).returning(deletedColumns(type));
        return { result: rows.length, changes: deletions(type, rows) };
      });
    },
  };
}
export type DocumentsRepo = ReturnType<typeof createDocumentsRepo>;
