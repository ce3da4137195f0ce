/**
 * `npm test`: the whole suite on a small machine, in three steps.
 *
 *   1. Every other file, SLOTS at a time, each in its own process, longest
 *      first. Each file has its own database and Redis key prefix, so files
 *      compete only for CPU. The files that run everything in their own
 *      process may start at once, beside `npm run build`; the files that run
 *      compiled code (COMPILED: the service, the CLI or the demo's service as
 *      their own processes, from dist/ as the image runs them) once the build
 *      is done. A file prints one line when it passes, all its output when it
 *      fails.
 *   2. The files that measure time (QUIET) once step 1 is over: the
 *      rate-limit test alone, then the others three at a time, which
 *      between them keep about one core of two busy.
 *   3. The log scan (test/check-logs.ts): no secret and no document reached
 *      any log the run wrote to .test-logs/.
 *
 * `npm test -- test/e2e.test.ts …` runs only those files, each in its step.
 * Exits non-zero when any file or the log scan failed; every step runs
 * regardless. The last line counts files, tests, failures and skips.
 */
import { spawn } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { buildSync } from 'esbuild';
import { repoRoot } from '../dev/service.js';
import { checkLogs, TEST_LOG_DIR } from './check-logs.js';

/** Files run at once in step 1 (TEST_SLOTS overrides): enough to keep two cores busy while some files wait on rate limits. */
const SLOTS = Number(process.env.TEST_SLOTS ?? 4);
/** Files run at once in step 2: between them they keep less than one core of two busy. */
const QUIET_SLOTS = Number(process.env.TEST_QUIET_SLOTS ?? 3);

/** Files that run dist/ (spawnProcess, serviceArgs, the demo's --compiled): they wait for the build. */
const COMPILED = new Set(['backfill.test.ts', 'cli.test.ts', 'config.test.ts', 'demo.test.ts', 'durability.test.ts', 'keys.test.ts', 'metrics-port.test.ts', 'partner-webhooks.test.ts']);

/**
 * Files whose assertions are about time on the scale of a busy machine's
 * hiccups (a few ms to a few hundred), and why. A file that flakes in step 1
 * belongs here. `alone`: it runs by itself first (the rate-limit test counts
 * requests as the simulator in its own process sees them arrive, and a CPU
 * busy with other files' start-ups delays that count); the rest run
 * QUIET_SLOTS at a time, longest first (the failover first: it sometimes
 * takes 40 s instead of 16).
 */
const QUIET: Array<[file: string, why: string, alone?: 'alone']> = [
  ['rate-limit.test.ts', 'never more than N requests in a rolling window as the simulator sees them arrive', 'alone'],
  ['failover.test.ts', 'no more than N requests in a rolling window as the simulator sees them arrive, across a failover'],
  ['limiter.test.ts', 'grants spaced within 250 ms, pauses held to 100-300 ms, each lane near its floor under a saturating load'],
  ['planner.test.ts', "reconciliation's floor of 4 requests a second counted over 4.5 s; runs at least 2-3 s apart"],
  ['tiers.test.ts', 'no request during a 429 pause, to within 100-200 ms'],
  ['pair-gate.test.ts', 'leases of tens of milliseconds'],
];
const quiet = new Set(QUIET.map(([file]) => file));

/**
 * Step 1 starts its longest files first (seconds, alone on a 2-core
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
  'changes.test.ts', // 4
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

/**
 * The test files run as JavaScript transpiled by esbuild (under a second for
 * src/, dev/ and test/; no type check, which is `npm run typecheck`'s):
 * through tsx, each test process spent about a second more CPU loading the
 * service's modules, and step 1 is CPU-bound.
 */
const TEST_BUILD_DIR = path.join(repoRoot, '.test-build');

function tsSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return tsSources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

function transpile(): void {
  rmSync(TEST_BUILD_DIR, { recursive: true, force: true });
  buildSync({
    entryPoints: ['src', 'dev', 'test'].flatMap((d) => tsSources(path.join(repoRoot, d))),
    outdir: TEST_BUILD_DIR,
    outbase: repoRoot,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'inline',
    logLevel: 'warning',
  });
}

interface FileResult {
  file: string;
  ok: boolean;
  tests: number;
  failed: number;
  skipped: number;
  seconds: number;
}

/** A file that has not finished after this long fails (its process is killed): a hang must not hold CI for its 90 minutes. */
const FILE_TIMEOUT_MS = 600_000;

/**
 * Runs one test file as its own process (node:test runs a file executed
 * directly and exits when its tests are done). Its output is held and
 * printed whole when it ends, so files running at once do not interleave:
 * one line for a file that passed (then its tests' diagnostics and skipped
 * tests' reasons), all of it for one that failed (or, with TEST_VERBOSE=1,
 * for every file).
 */
function testFile(file: string, env: NodeJS.ProcessEnv): Promise<FileResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const js = path.join(TEST_BUILD_DIR, 'test', file.replace(/\.ts$/, '.js'));
    const child = spawn(process.execPath, ['--enable-source-maps', '--test-force-exit', js], {
      cwd: repoRoot,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => {
      output += `\n# ${file}: killed after ${FILE_TIMEOUT_MS / 1000} s\n`;
      child.kill('SIGKILL');
    }, FILE_TIMEOUT_MS);
    child.on('error', (err) => (output += `\n# ${file}: ${err.message}\n`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output)?.[1] ?? 0);
      const result: FileResult = {
        file,
        ok: code === 0,
        tests: count('tests'),
        failed: count('fail') + count('cancelled'),
        skipped: count('skipped'),
        seconds: (Date.now() - t0) / 1000,
      };
      const line = `# ${result.ok ? 'ok' : `FAILED (${code ?? signal})`} ${file}: ${result.tests} tests${result.skipped ? `, ${result.skipped} skipped` : ''} in ${result.seconds.toFixed(1)} s\n`;
      if (result.ok && !process.env.TEST_VERBOSE) {
        // What the tests say of themselves (t.diagnostic: figures measured) and why any was skipped.
        const notes = output
          .split('\n')
          .filter((l) => /# SKIP/.test(l) || (/^\s*# /.test(l) && !/^\s*# (Subtest: |(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) [\d.]+$)/.test(l)))
          .map((l) => `#   ${l.trim().replace(/^# /, '')}\n`);
        process.stdout.write(line + notes.join(''));
      } else {
        process.stdout.write(`${output.trimEnd()}\n${line}`);
      }
      resolve(result);
    });
  });
}

/**
 * Runs files `slots` at a time, each as soon as a slot is free and it may
 * start (`ready`: a compiled file waits for the build), in the order given.
 */
async function pool(order: string[], slots: number, ready: (file: string) => Promise<NodeJS.ProcessEnv | null>): Promise<FileResult[]> {
  const results: FileResult[] = [];
  const waiting = [...order];
  const running = new Set<Promise<void>>();
  const eligible = new Map<string, NodeJS.ProcessEnv | null>();
  for (const f of order) void ready(f).then((env) => eligible.set(f, env));
  while (waiting.length > 0 || running.size > 0) {
    const i = waiting.findIndex((f) => eligible.has(f));
    if (i >= 0 && running.size < slots) {
      const [file] = waiting.splice(i, 1);
      const env = eligible.get(file!)!;
      if (!env) {
        results.push({ file: file!, ok: false, tests: 0, failed: 0, skipped: 0, seconds: 0 });
        process.stdout.write(`# FAILED ${file}: not run (the build failed)\n`);
        continue;
      }
      const p: Promise<void> = testFile(file!, env).then((r) => {
        results.push(r);
        running.delete(p);
      });
      running.add(p);
      continue;
    }
    // Wait for a file to end, or a compiled file to become ready.
    await Promise.race([...running, new Promise((r) => setTimeout(r, 100))]);
  }
  return results;
}

const t0 = Date.now();
rmSync(TEST_LOG_DIR, { recursive: true, force: true });
transpile();
// dist/ is built by this run: an edit made later in the run must not fail the tests that run it.
const built = { ...process.env, TEST_DIST_BUILT: '1' };
const build = run('npm run build', 'npm', ['run', '--silent', 'build']);
const step1 = files.filter((f) => !quiet.has(f));
const results = await pool(step1, SLOTS, async (f) => (COMPILED.has(f) ? ((await build) ? built : null) : process.env));
// Without a build, a file that runs dist/ checks that it is not older than src/.
const buildOk = await build;
const quietEnv = async () => (buildOk ? built : process.env);
const quietFiles = (alone: boolean) => QUIET.filter(([file, , a]) => files.includes(file) && (a === 'alone') === alone).map(([file]) => file);
process.stdout.write(`# step 1: ${((Date.now() - t0) / 1000).toFixed(1)} s; the files that measure time, alone or ${QUIET_SLOTS} at a time:\n`);
results.push(...(await pool(quietFiles(true), 1, quietEnv)));
results.push(...(await pool(quietFiles(false), QUIET_SLOTS, quietEnv)));
const { problems, summary } = checkLogs(TEST_LOG_DIR, { wholeSuite });
for (const p of problems.slice(0, 20)) process.stdout.write(`# log scan: ${p}\n`);
process.stdout.write(`# log scan: ${problems.length ? `FAILED, ${problems.length} problems` : 'ok'}; ${summary}\n`);
const failedFiles = results.filter((r) => !r.ok).map((r) => r.file);
const sum = (k: 'tests' | 'failed' | 'skipped') => results.reduce((n, r) => n + r[k], 0);
const ok = buildOk && failedFiles.length === 0 && problems.length === 0;
process.stdout.write(
  `# npm test: ${ok ? 'ok' : 'FAILED'} in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${results.length} files, ${sum('tests')} tests, ${sum('failed')} failed, ${sum('skipped')} skipped${
    failedFiles.length ? `; failed: ${failedFiles.join(', ')}` : ''
  }\n`,
);
process.exit(ok ? 0 : 1);
