import path from 'node:path';
import { repoRoot, tsxRuntime } from '../../dev/service.js';
import { uniquePrefix } from '../../dev/services.js';
import { startStack as startDevStack, type Stack as DevStack } from '../../dev/stack.js';
import type { SimOptions } from '../../src/sim/index.js';
import { TEST_SECRETS } from './env.js';

export { eventually, freePort } from '../../dev/util.js';
export { repoRoot };

/**
 * Every stack writes its logs (in-process and child processes) here, with the
 * secrets its run produced beside them; test/zz-logs.test.ts checks that no
 * secret reached any log. `npm test` empties the folder first.
 */
export const TEST_LOG_DIR = path.join(repoRoot, '.test-logs');
const TEST_LOG_LEVEL = process.env.TEST_LOG_LEVEL ?? 'debug';

export type Stack = DevStack;

/**
 * The simulator, a database and key prefix of the test's own, and the api in
 * this process (with a worker, unless `inProcessWorker: false`);
 * `spawnProcess` runs more of the service as processes. No backfill on
 * connect unless `env` turns it on.
 */
export async function startStack(
  opts: { sim?: Partial<SimOptions>; env?: Record<string, string>; inProcessWorker?: boolean; label?: string } = {},
): Promise<Stack> {
  const label = opts.label ?? 'stack';
  const prefix = uniquePrefix(label);
  return startDevStack({
    label,
    prefix,
    secrets: TEST_SECRETS,
    sim: opts.sim,
    // Tests of the webhook path count requests; the backfill tests turn the load on connect back on.
    env: { BACKFILL_DAYS: '0', ...opts.env },
    inProcessEnv: { WORKER_CONCURRENCY: '8' },
    workers: opts.inProcessWorker === false ? 0 : 'in-process',
    runtime: tsxRuntime(),
    logLevel: TEST_LOG_LEVEL,
    logFile: path.join(TEST_LOG_DIR, `${prefix}.log`),
    secretsFile: path.join(TEST_LOG_DIR, `${prefix}.secrets.json`),
    stop: 'kill',
  });
}
