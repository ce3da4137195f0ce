import { loadConfig, type Config } from '../../src/config.js';
import { distRuntime, nodeArgs, type Entry } from '../../dev/service.js';
import { createDatabase, getServices, type Database } from '../../dev/services.js';

/**
 * Postgres and Redis as dev/services.ts finds them (DATABASE_URL / REDIS_URL,
 * else testcontainers, else the local services). Each test file gets its own
 * database and its own Redis key prefix.
 */
export { clearPrefix, getServices, uniquePrefix } from '../../dev/services.js';
export type TestDatabase = Database;

/** A fresh database with every migration applied. */
export async function createTestDatabase(label = 'test'): Promise<TestDatabase> {
  return createDatabase((await getServices()).adminDatabaseUrl, { label });
}

export const TEST_SECRETS = {
  OURA_CLIENT_ID: 'test-client-id',
  OURA_CLIENT_SECRET: 'test-client-secret-0123456789',
  OURA_WEBHOOK_VERIFICATION_TOKEN: 'test-verification-token',
  TOKEN_ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
  ADMIN_TOKEN: 'test-admin-token-0123456789',
};

/** A full service config pointing at the given database, Redis and simulator. */
export function testConfig(env: Record<string, string | undefined>): Config {
  return loadConfig({
    ...TEST_SECRETS,
    PUBLIC_BASE_URL: 'http://127.0.0.1:1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    WORKER_CONCURRENCY: '8',
    ...env,
  });
}

/**
 * A test runs the service (and the CLI) as its own process compiled, from
 * dist/: `npm test` builds it first (and says so with TEST_DIST_BUILT, so an
 * edit made during the run does not fail it); a file run on its own checks
 * that dist/ is not older than src/.
 */
export const serviceRuntime = distRuntime({ checkFresh: process.env.TEST_DIST_BUILT !== '1' });

/** The node arguments that run `dist/<entry>.js` with `args`. */
export function serviceArgs(entry: Entry, args: string[]): string[] {
  return nodeArgs(serviceRuntime, entry, args);
}
