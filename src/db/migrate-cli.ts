import pg from 'pg';
import { loadDatabaseUrl, orExit } from '../config.js';
import { createPool } from './index.js';
import { runMigrations } from './migrate.js';

/** Creates the target database when it does not exist yet (first run on a fresh server). */
async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) return;
  const probe = new pg.Client({ connectionString: url });
  try {
    await probe.connect();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err;
  } finally {
    await probe.end().catch(() => {});
  }
  target.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: target.toString() });
  await admin.connect();
  try {
    await admin.query(`create database "${name.replace(/"/g, '""')}"`);
    console.log(`created database ${name}`);
  } finally {
    await admin.end();
  }
}

const url = orExit(() => loadDatabaseUrl());
try {
  await ensureDatabase(url);
  const pool = createPool({ url, applicationName: 'oura-ingest-migrate' });
  try {
    await runMigrations(pool);
  } finally {
    await pool.end();
  }
  console.log('migrations applied');
} catch (err) {
  console.error(`migrate: ${(err as Error).message}`);
  process.exitCode = 1;
}
