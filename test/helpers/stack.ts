import path from 'node:path';
import { repoRoot } from '../../dev/service.js';
import { uniquePrefix } from '../../dev/services.js';
import { startStack as startDevStack, type Stack as DevStack } from '../../dev/stack.js';
import type { SimOptions } from '../../src/sim/index.js';
import { TEST_LOG_DIR } from '../check-logs.js';
import { serviceRuntime, TEST_SECRETS } from './env.js';

export { eventually, freePort, freePortRange, freeStablePort } from '../../dev/util.js';
export { repoRoot };

const TEST_LOG_LEVEL = process.env.TEST_LOG_LEVEL ?? 'debug';

export type Stack = DevStack;

/**
 * The simulator, a database and key prefix of the test's own, and the api in
 * this process (with a worker, unless `inProcessWorker: false`);
 * `spawnProcess` runs more of the service as processes. No backfill on
 * connect unless `env` turns it on.
 */
export async function startStack(
  opts: {
    sim?: Partial<SimOptions>;
    env?: Record<string, string>;
    inProcessWorker?: boolean;
    label?: string;
    /** Another Redis (or Postgres) than the machine's own. */
    services?: { adminDatabaseUrl: string; redisUrl: string };
    /** The key prefix as a hash tag, `{label-…}`, as Redis Cluster needs. */
    hashTag?: boolean;
  } = {},
): Promise<Stack> {
  const label = opts.label ?? 'stack';
  const prefix = opts.hashTag ? `{${uniquePrefix(label)}}` : uniquePrefix(label);
  return startDevStack({
    label,
    prefix,
    secrets: TEST_SECRETS,
    sim: opts.sim,
    ...(opts.services ? { services: opts.services } : {}),
    // Tests of the webhook path count requests; the backfill tests turn the load on connect back on.
    env: { BACKFILL_DAYS: '0', ...opts.env },
    inProcessEnv: { WORKER_CONCURRENCY: '8' },
    workers: opts.inProcessWorker === false ? 0 : 'in-process',
    runtime: serviceRuntime,
    logLevel: TEST_LOG_LEVEL,
    logFile: path.join(TEST_LOG_DIR, `${prefix}.log`),
    secretsFile: path.join(TEST_LOG_DIR, `${prefix}.secrets.json`),
    stop: 'kill',
  });
}
