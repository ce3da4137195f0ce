import { and, eq, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { documentTypes, type DocumentType } from '../oura/registry.js';
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

export function createDocumentsRepo(db: Db) {
  return {
    /** Inserts or replaces documents of one type for one user. */
    async upsert(type: DocumentType, userId: string, docs: Array<Record<string, unknown>>): Promise<number> {
      if (docs.length === 0) return 0;
      const table = documentTables[type];
      const rows = docs.map((d) => toRow(type, userId, d));
      const columns = table as unknown as Record<string, PgColumn>;
      const set: Record<string, unknown> = {};
      for (const key of Object.keys(rows[0]!)) {
        if (key === 'id') continue;
        set[key] = sql.raw(`excluded.${JSON.stringify(columns[key]!.name)}`);
      }
      await db
        .insert(table)
        .values(rows as never)
        .onConflictDoUpdate({ target: table.id, set: set as never });
      return rows.length;
    },

    async remove(type: DocumentType, userId: string, id: string): Promise<boolean> {
      const table = documentTables[type];
      const rows = await db
        .delete(table)
        .where(and(eq(table.id, id), eq(table.user_id, userId)))
        .returning({ id: table.id });
      return rows.length > 0;
    },

    async get(type: DocumentType, id: string): Promise<Row | null> {
      const table = documentTables[type];
      const rows = await db.select().from(table).where(eq(table.id, id)).limit(1);
      return (rows[0] as Row | undefined) ?? null;
    },
  };
}
export type DocumentsRepo = ReturnType<typeof createDocumentsRepo>;
