import { loadDatabaseUrl, orExit } from '../config.js';
import { createPool } from './index.js';
import { runMigrations } from './migrate.js';

const url = orExit(() => loadDatabaseUrl());
const pool = createPool({ url, applicationName: 'oura-ingest-migrate' });
try {
  await runMigrations(pool);
  console.log('migrations applied');
} catch (err) {
  console.error(`migrate: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await pool.end();
}
