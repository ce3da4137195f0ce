import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { repoRoot } from './service.js';

const root = repoRoot;

export interface ComposeService {
  image?: string;
  build?: string | { context?: string };
  /** A variable without a value (`NAME:`) is taken from the environment compose runs in, and left unset when it is not set there. */
  environment?: Record<string, string | null>;
  profiles?: string[];
  entrypoint?: string[];
  command?: string[];
  healthcheck?: { test?: string[] };
  stop_grace_period?: string;
  restart?: string;
}

/** docker-compose.yml's services, with YAML merge keys (`<<: *service-env`) resolved as Compose does. */
export function composeServices(): Record<string, ComposeService> {
  const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services?: Record<string, ComposeService> };
  return compose.services ?? {};
}

/** Compose's `${VAR:-default}` / `${VAR}` interpolation of a value, against `env`. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}/g, (_, name: string, def?: string) => env[name] || (def ?? ''));
}

/**
 * A service's environment as compose gives it to the container when compose
 * runs in `env` (default: an empty environment): values interpolated, a
 * variable without a value taken from `env` or left out.
 */
export function composeEnv(service: string, env: Record<string, string> = {}): Record<string, string> {
  const raw = composeServices()[service]?.environment ?? {};
  return Object.fromEntries(
    Object.entries(raw).flatMap(([k, v]) => (v === null ? (env[k] === undefined ? [] : [[k, env[k]]]) : [[k, interpolate(String(v), env)]])),
  );
}

/**
 * A compose duration (`30s`, `1m30s`, `1.5s`, `500ms`) in seconds; compose's
 * default stop grace period (10 s) when `value` is undefined.
 */
export function composeDurationS(value: string | undefined): number {
  if (value === undefined) return 10;
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) throw new Error(`not a compose duration: ${JSON.stringify(value)}`);
  const unit = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6 } as const;
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
}

/** The Dockerfile's text. */
export function dockerfile(): string {
  return readFileSync(path.join(root, 'Dockerfile'), 'utf8');
}

/** The flags of the Dockerfile's `ENV NODE_OPTIONS=…` (quoted or not); empty if it sets none. */
export function imageNodeOptions(): string[] {
  return (/^ENV NODE_OPTIONS=("?)(.*)\1\s*$/m.exec(dockerfile())?.[2] ?? '').split(/\s+/).filter(Boolean);
}

/**
 * The node flags a service ships with: its NODE_OPTIONS in
 * docker-compose.yml, else the image's (`ENV NODE_OPTIONS=…` in the Dockerfile).
 */
export function serviceNodeOptions(service: 'api' | 'worker'): string[] {
  const fromCompose = composeServices()[service]?.environment?.NODE_OPTIONS;
  return fromCompose == null ? imageNodeOptions() : fromCompose.split(/\s+/).filter(Boolean);
}
