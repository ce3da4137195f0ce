/**
 * The service's code run as its own process: through tsx from src/, or
 * compiled by tsc (dist/ after `npm run build`, or a private copy a
 * benchmark compiles), and stopped as an operator would stop it.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The checkout: the nearest folder above this module with a package.json.
 * This module also runs transpiled into .test-build/dev/ (test/run.ts), one
 * level deeper than its source.
 */
export const repoRoot = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
})();

/** An entry point under src/: the service (`main api|worker|all`) or the operator CLI. */
export type Entry = 'main' | 'cli/main';
export type Role = 'api' | 'worker' | 'all';

/** How a spawned process runs the code. */
export interface Runtime {
  /** The node arguments that run `entry` (the entry's own arguments follow). */
  entry: (entry: Entry) => string[];
  /** Node flags per role, before the entry (e.g. the image's NODE_OPTIONS). */
  nodeFlags?: Partial<Record<Role, string[]>>;
  /** Environment the runtime adds (e.g. NODE_ENV=production). */
  env?: Record<string, string>;
}

/** `node --import tsx src/<entry>.ts`: the development loader, nothing to build. */
export function tsxRuntime(): Runtime {
  return { entry: (entry) => ['--import', 'tsx', path.join(repoRoot, 'src', `${entry}.ts`)] };
}

/** `node <dir>/<entry>.js`: code compiled by tsc into `dir`. */
export function builtRuntime(dir: string, opts: Omit<Runtime, 'entry'> = {}): Runtime {
  return { ...opts, entry: (entry) => [path.join(dir, `${entry}.js`)] };
}

export const distDir = path.join(repoRoot, 'dist');

/** The .ts files under src/ that tsconfig.build.json compiles. */
function buildSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return buildSources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') && !e.name.endsWith('.test.ts') ? [p] : [];
  });
}

/**
 * dist/ as `npm run build` leaves it. Running an entry throws, naming the
 * command to run, when dist/ is missing or (with `checkFresh`) when a file
 * under src/ is newer than its compiled form: the process would run other
 * code than this one imports. Checked once, when first used.
 */
export function distRuntime(opts: { checkFresh?: boolean } = {}): Runtime {
  const built = builtRuntime(distDir);
  let checked = false;
  return {
    entry: (entry) => {
      if (!checked) {
        assertBuilt(opts.checkFresh ?? true);
        checked = true;
      }
      return built.entry(entry);
    },
  };
}

function assertBuilt(checkFresh: boolean): void {
  if (!existsSync(path.join(distDir, 'main.js'))) throw new Error('dist/main.js is missing: run `npm run build` first');
  if (!checkFresh) return;
  const src = path.join(repoRoot, 'src');
  for (const file of buildSources(src)) {
    const js = path.join(distDir, path.relative(src, file)).replace(/\.ts$/, '.js');
    if (!existsSync(js) || statSync(js).mtimeMs < statSync(file).mtimeMs) {
      throw new Error(`dist/ is older than ${path.relative(repoRoot, file)}: run \`npm run build\` first`);
    }
  }
}

/**
 * Compiles src/ with tsc into `node_modules/.cache/<name>` (under
 * node_modules, so the compiled files resolve their packages; dist/ is left
 * alone), as the Docker image does; returns the directory. Blocks for a while.
 */
export function compileService(name: string, log: (msg: string) => void): string {
  const dir = path.join(repoRoot, 'node_modules/.cache', name);
  log(`compiling src/ to ${path.relative(repoRoot, dir)}`);
  rmSync(dir, { recursive: true, force: true });
  try {
    execFileSync(path.join(repoRoot, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json', '--outDir', dir], { cwd: repoRoot, stdio: 'pipe' });
  } catch (err) {
    // Type errors elsewhere in a working tree still emit JavaScript; only a missing entry point stops the run.
    if (!existsSync(path.join(dir, 'main.js'))) throw err;
    log('tsc reported errors; running what it emitted');
  }
  return dir;
}

/** The node arguments that run `entry` with `args` under `runtime` (with the role's flags, if any). */
export function nodeArgs(runtime: Runtime, entry: Entry, args: string[] = [], role?: Role): string[] {
  return [...(role ? (runtime.nodeFlags?.[role] ?? []) : []), ...runtime.entry(entry), ...args];
}

/** SIGTERM, and SIGKILL if the process has not exited after `graceMs`; true if it exited by itself. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise<boolean>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve(child.signalCode !== 'SIGKILL');
    });
    child.kill('SIGTERM');
  });
}
