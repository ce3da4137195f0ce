/**
 * A container engine as the image test drives it: docker when its daemon
 * answers, else podman. Where ../shared/containers/ exists (machines with no
 * registry and no Docker daemon; see its README), podman runs with the
 * settings its env.sh exports and builds with `--pull=never --network host`,
 * against the local stand-in for the Dockerfile's base image.
 *
 * Values that may be secret never go on a command line: `run` and `exec`
 * name the variables (`-e NAME`) and the CLI reads them from its own
 * environment, so an error naming the command names no secret.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './service.js';

export const sharedContainersDir = path.resolve(repoRoot, '..', 'shared', 'containers');

export interface Engine {
  name: 'docker' | 'podman';
  /** The environment its CLI runs with. */
  env: NodeJS.ProcessEnv;
  /** Flags of `build` on this machine. */
  buildFlags: string[];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `command args`; never rejects (a missing command is code null, its error in stderr). */
export function runCommand(
  command: string,
  args: string[],
  { env = process.env, timeoutMs = 60_000, cwd = repoRoot, onOutput }: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; onOutput?: (chunk: string) => void } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      onOutput?.(d.toString());
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onOutput?.(d.toString());
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs / 1000} s)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: err.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The last non-empty line of a command's output: what a one-line error quotes. */
export function lastLine(text: string): string {
  return text.trim().split('\n').filter(Boolean).pop()?.trim() ?? '';
}

/** The variables `env.sh` (a bash file meant to be sourced) sets or changes. */
async function sourced(file: string): Promise<Record<string, string>> {
  const r = await runCommand('bash', ['-c', 'set -a; . "$1" >/dev/null; env -0', '_', file], { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`sourcing ${file}: ${lastLine(r.stderr) || `exit ${r.code}`}`);
  const out: Record<string, string> = {};
  for (const entry of r.stdout.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const [k, v] = [entry.slice(0, eq), entry.slice(eq + 1)];
    if (process.env[k] !== v && k !== '_' && k !== 'SHLVL' && k !== 'PWD') out[k] = v;
  }
  return out;
}

/**
 * The engine that answers here: docker (`docker info`), else podman
 * (`podman info`), with the shared settings where they exist. Otherwise
 * `{ missing }`: why neither answers, in one line.
 */
export async function findEngine(): Promise<Engine | { missing: string }> {
  const docker = await runCommand('docker', ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 20_000 });
  if (docker.code === 0) return { name: 'docker', env: process.env, buildFlags: [] };

  const envSh = path.join(sharedContainersDir, 'env.sh');
  const shared = existsSync(envSh);
  const env = shared ? { ...process.env, ...(await sourced(envSh)) } : process.env;
  const podman = await runCommand('podman', ['info', '--format', '{{.Host.OCIRuntime.Name}}'], { env, timeoutMs: 60_000 });
  if (podman.code === 0) return { name: 'podman', env, buildFlags: shared ? ['--pull=never', '--network', 'host'] : [] };

  const why = (r: CliResult) => (r.code === null ? 'not installed' : lastLine(r.stderr) || `exit ${r.code}`);
  const hint = existsSync(path.join(sharedContainersDir, 'setup.sh')) ? `; run ${path.relative(repoRoot, sharedContainersDir)}/setup.sh first` : '';
  return { missing: `no container engine answers (docker: ${why(docker)}; podman: ${why(podman)})${hint}` };
}

/** The engine's CLI, for what the image test does with it. */
export function createContainerCli(engine: Engine) {
  /** Runs the engine's CLI; throws one line naming the command (never an environment value) unless it exits 0. */
  async function cli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; onOutput?: (chunk: string) => void } = {}): Promise<string> {
    const r = await runCommand(engine.name, args, { env: { ...engine.env, ...opts.env }, timeoutMs: opts.timeoutMs, onOutput: opts.onOutput });
    if (r.code !== 0) throw new Error(`${engine.name} ${args.slice(0, 2).join(' ')} … exited ${r.code}: ${lastLine(r.stderr) || lastLine(r.stdout)}`);
    return r.stdout;
  }
  /** `-e NAME` for each variable: the CLI takes the values from its environment. */
  const envFlags = (env: Record<string, string>) => Object.keys(env).flatMap((k) => ['-e', k]);

  return {
    engine,
    cli,
    /** Builds `tag` from the repository's Dockerfile; `onOutput` receives the build's output. */
    build: (tag: string, onOutput?: (chunk: string) => void) => cli(['build', ...engine.buildFlags, '-t', tag, '.'], { timeoutMs: 20 * 60_000, onOutput }),
    imageExists: async (image: string) => (await runCommand(engine.name, ['image', 'inspect', image], { env: engine.env, timeoutMs: 30_000 })).code === 0,
    /** Bytes, as the engine counts them. */
    imageSize: async (image: string) => Number((await cli(['image', 'inspect', '--format', '{{.Size}}', image])).trim()),
    pull: (image: string) => cli(['pull', image], { timeoutMs: 120_000 }),
    /**
     * Starts a container on the host's network (it reaches 127.0.0.1 as this
     * machine does) and returns at once; `entrypoint` replaces the image's.
     */
    start: (o: { name: string; image: string; env: Record<string, string>; args?: string[]; entrypoint?: string; labels?: Record<string, string> }) =>
      cli(
        [
          'run',
          '-d',
          '--name',
          o.name,
          '--network',
          'host',
          ...Object.entries(o.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
          ...envFlags(o.env),
          ...(o.entrypoint ? ['--entrypoint', o.entrypoint] : []),
          o.image,
          ...(o.args ?? []),
        ],
        { env: o.env },
      ),
    /** Runs a command in a new container and waits for it; its exit code and output. */
    runToEnd: (o: { name: string; image: string; env?: Record<string, string>; args: string[]; entrypoint?: string; timeoutMs?: number }) =>
      runCommand(
        engine.name,
        ['run', '--name', o.name, '--network', 'host', ...envFlags(o.env ?? {}), ...(o.entrypoint ? ['--entrypoint', o.entrypoint] : []), o.image, ...o.args],
        { env: { ...engine.env, ...o.env }, timeoutMs: o.timeoutMs ?? 120_000 },
      ),
    exec: (name: string, args: string[]) => runCommand(engine.name, ['exec', name, ...args], { env: engine.env, timeoutMs: 30_000 }),
    /** What `stop` does: the image's stop signal (SIGTERM), then SIGKILL after `graceS`. */
    stop: (name: string, graceS: number) => cli(['stop', '-t', String(graceS), name], { timeoutMs: (graceS + 30) * 1000 }),
    exitCode: async (name: string) => Number((await cli(['inspect', '--format', '{{.State.ExitCode}}', name])).trim()),
    running: async (name: string) => (await cli(['inspect', '--format', '{{.State.Running}}', name])).trim() === 'true',
    /** stdout and stderr of a container, as one text. */
    logs: async (name: string) => {
      const r = await runCommand(engine.name, ['logs', name], { env: engine.env, timeoutMs: 30_000 });
      return r.stdout + r.stderr;
    },
    /** Removes containers, running or not; true when the engine says it did. */
    remove: async (names: string[]) => names.length === 0 || (await runCommand(engine.name, ['rm', '-f', ...names], { env: engine.env, timeoutMs: 60_000 })).code === 0,
  };
}

export type ContainerCli = ReturnType<typeof createContainerCli>;
