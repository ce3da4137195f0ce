import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import type pg from 'pg';
import { createDb } from './index.js';
import { applyComments } from './comments.js';
import { prepareSeriesPartitions } from './partitions.js';

/** migrations/ sits at the package root, both in the source tree and in the container. */
export function migrationsFolder(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'migrations');
    if (existsSync(path.join(candidate, 'meta', '_journal.json'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('migrations folder not found');
}

/**
 * Applies the committed migrations, then partitions the time series by month
 * where they are not yet (src/db/partitions.ts: in short steps of their own,
 * outside the migrations' transaction, so that a large table is never locked
 * for long), and sets the comments of schema oura (src/db/comments.ts). Idempotent: applied migrations are recorded in
 * drizzle.__drizzle_migrations and skipped. An advisory lock keeps two
 * replicas starting at once from racing.
 */
export async function runMigrations(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock(726871001)');
    try {
      await migrate(createDb(pool), { migrationsFolder: migrationsFolder(), migrationsSchema: 'drizzle' });
      await prepareSeriesPartitions(pool);
      await applyComments(pool);
    } finally {
      await client.query('select pg_advisory_unlock(726871001)');
    }
  } finally {
    client.release();
  }
}

/** The newest migration is applied (for /readyz). */
export async function migrationsApplied(pool: pg.Pool): Promise<boolean> {
  const { readFileSync } = await import('node:fs');
  const journal = JSON.parse(readFileSync(path.join(migrationsFolder(), 'meta', '_journal.json'), 'utf8')) as {
    entries: Array<{ when: number }>;
  };
  const newest = Math.max(...journal.entries.map((e) => e.when));
  try {
    const { rows } = await pool.query<{ n: string }>(
      'select count(*) as n from drizzle.__drizzle_migrations where created_at >= $1',
      [newest],
    );
    return Number(rows[0]?.n ?? 0) > 0;
  } catch {
    return false;
  }
}
