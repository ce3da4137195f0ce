/**
 * `npm test`: the whole suite on a small machine, in three steps.
 *
 *   1. Two lanes of two files at a time. Each file has its own database and
 *      Redis key prefix, so files compete only for CPU.
 *      - The files that run everything in their own process start at once,
 *        beside `npm run build`.
 *      - The files that run compiled code (COMPILED: the service, the CLI or
 *        the demo's service as their own processes, from dist/ as the image
 *        runs them) start when the build is done.
 *   2. The files that measure time (QUIET), two at a time once step 1 is
 *      over: between them they keep less than one core of two busy.
 *   3. The log scan (test/check-logs.ts): no secret and no document reached
 *      any log the run wrote to .test-logs/.
 *
 * `npm test -- test/e2e.test.ts …` runs only those files, each in its step.
 * Exits non-zero when any step failed; every step runs regardless.
 */
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../dev/service.js';
import { checkLogs, TEST_LOG_DIR } from './check-logs.js';

/** Files run at once in each lane of step 1: four in all keep two cores busy, more only queue for them. */
const PER_LANE = 2;

/** Files that run dist/ (spawnProcess, serviceArgs, the demo's --compiled): they wait for the build. */
const COMPILED = new Set(['backfill.test.ts', 'cli.test.ts', 'config.test.ts', 'demo.test.ts', 'durability.test.ts', 'keys.test.ts', 'metrics-port.test.ts', 'partner-webhooks.test.ts']);

/**
 * Files whose assertions are about time on the scale of a busy machine's
 * hiccups (a few ms to a few hundred), and why, in the order they run: the
 * limiter's measurements come after the others have started their worker
 * processes, which keeps both cores busy for a few seconds. A file that
 * flakes in step 1 belongs here.
 */
const QUIET: Array<[file: string, why: string]> = [
  ['rate-limit.test.ts', 'never more than N requests in a rolling window as the simulator sees them arrive'],
  ['tiers.test.ts', 'no request during a 429 pause, to within 100-200 ms'],
  ['pair-gate.test.ts', 'leases of tens of milliseconds'],
  ['limiter.test.ts', 'grants spaced within 250 ms, pauses held to 100-300 ms, each lane near its floor under a saturating load'],
  ['failover.test.ts', 'no more than N requests in a rolling window as the simulator sees them arrive, across a failover'],
  ['planner.test.ts', "reconciliation's floor of 4 requests a second counted over 4.5 s; runs at least 2-3 s apart"],
];
const quiet = new Set(QUIET.map(([file]) => file));

/**
 * Each lane starts its longest files first (seconds, alone on a 2-core
 * machine), so that none starts late and finishes last. Files not named
 * here go first: a new file's length is not known.
 */
const LONGEST_FIRST = [
  'race.test.ts', // 64
  'backfill.test.ts', // 43
  'scarce-budget.test.ts', // 39
  'durability.test.ts', // 36
  'demo.test.ts', // 30
  'partner-webhooks.test.ts', // 17
  'cluster.test.ts', // 16
  'failures.test.ts', // 14
  'cli.test.ts', // 11
  'recheck.test.ts', // 10
  'webhook.test.ts', // 10
  'e2e.test.ts', // 9
  'admin.test.ts', // 8
  'subscriptions.test.ts', // 8
  'partitions.test.ts', // 8
  'observability.test.ts', // 7
  'metrics-port.test.ts', // 6
  'error-logs.test.ts', // 5
  'sim.test.ts', // 5
  'redelivery.test.ts', // 4
  'keys.test.ts', // 4
  'oauth.test.ts', // 3
  'queues-dashboard.test.ts', // 3
  'config.test.ts', // 2
  'event-order.test.ts', // 2
  'oura-client.test.ts', // 1
  'compose.test.ts', // 1
  'request-logger.test.ts', // 1
  'schema-doc.test.ts', // 1
  'reader-role.test.ts', // 1
  'alerts.test.ts', // 1
];

const all = readdirSync(path.join(repoRoot, 'test'))
  .filter((f) => f.endsWith('.test.ts'))
  .sort((a, b) => LONGEST_FIRST.indexOf(a) - LONGEST_FIRST.indexOf(b) || a.localeCompare(b));

const asked = process.argv.slice(2).map((a) => path.basename(a));
const unknown = asked.filter((f) => !all.includes(f));
if (unknown.length) {
  process.stderr.write(`npm test: no such test file: ${unknown.join(', ')}\n`);
  process.exit(2);
}
const wholeSuite = asked.length === 0;
const files = wholeSuite ? all : all.filter((f) => asked.includes(f));

/** Runs a command on this terminal; resolves to whether it exited 0, after a line saying so. */
function run(what: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repoRoot, env, stdio: 'inherit' });
    child.on('error', (err) => process.stderr.write(`${what}: ${err.message}\n`));
    child.on('close', (code, signal) => {
      process.stdout.write(`# ${what}: ${code === 0 ? 'ok' : `FAILED (${code ?? signal})`} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      resolve(code === 0);
    });
  });
}

async function nodeTest(what: string, group: string[], concurrency: number, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (group.length === 0) return true;
  return run(
    what,
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${concurrency}`,
      // A test that hangs fails after 10 minutes; a handle it leaks does not keep the run open.
      '--test-timeout=600000',
      '--test-force-exit',
      ...group.map((f) => path.join('test', f)),
    ],
    env,
  );
}

const t0 = Date.now();
rmSync(TEST_LOG_DIR, { recursive: true, force: true });
// dist/ is built by this run: an edit made later in the run must not fail the tests that run it.
const built = { ...process.env, TEST_DIST_BUILT: '1' };
const inProcess = nodeTest('in-process files', files.filter((f) => !COMPILED.has(f) && !quiet.has(f)), PER_LANE);
const compiled = run('npm run build', 'npm', ['run', '--silent', 'build']).then(async (ok) =>
  ok ? [ok, await nodeTest('files that run dist/', files.filter((f) => COMPILED.has(f) && !quiet.has(f)), PER_LANE, built)] : [ok],
);
const results = [await inProcess, ...(await compiled)];
// Without a build, a file that runs dist/ checks that it is not older than src/.
const quietFiles = QUIET.map(([file]) => file).filter((f) => files.includes(f));
results.push(await nodeTest('files that measure time, two at a time', quietFiles, 2, results[1] ? built : process.env));
const { problems, summary } = checkLogs(TEST_LOG_DIR, { wholeSuite });
for (const p of problems.slice(0, 20)) process.stdout.write(`# log scan: ${p}\n`);
process.stdout.write(`# log scan: ${problems.length ? `FAILED, ${problems.length} problems` : 'ok'}; ${summary}\n`);
results.push(problems.length === 0);
const ok = results.every(Boolean);
process.stdout.write(`# npm test: ${ok ? 'ok' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
process.exit(ok ? 0 : 1);
