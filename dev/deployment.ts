import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface ComposeService {
  environment?: Record<string, string>;
  profiles?: string[];
  command?: string[];
  healthcheck?: { test?: string[] };
  restart?: string;
}

/** docker-compose.yml's services, with YAML merge keys (`<<: *service-env`) resolved as Compose does. */
export function composeServices(): Record<string, ComposeService> {
  const compose = parse(readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services?: Record<string, ComposeService> };
  return compose.services ?? {};
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
  return fromCompose === undefined ? imageNodeOptions() : fromCompose.split(/\s+/).filter(Boolean);
}
