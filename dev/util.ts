import { createServer } from 'node:net';

/**
 * A JSON client for the simulator's routes (its `/_sim` control API and its
 * Oura routes): the parsed body, or an error naming the route and the answer.
 */
export function simJsonClient(simUrl: string) {
  return async function simJson(method: string, route: string, body?: unknown): Promise<any> {
    const res = await fetch(`${simUrl}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 400) throw new Error(`simulator ${method} ${route} → ${res.status}: ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : null;
  };
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A free port below the ephemeral range (32768 and up on Linux), for a
 * server a test stops and starts again: no listen(0) elsewhere is given it
 * meanwhile, and no client socket gets it as its own port, which a client
 * retrying against a closed ephemeral port can do, connecting to itself.
 */
export async function freeStablePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await portFree(port)) return port;
  }
  throw new Error('no free port found between 20000 and 32000');
}

/** Whether a TCP port is free on every address right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, () => s.close(() => resolve(true)));
  });
}

/** The first of `n` consecutive TCP ports free right now (for a range setting such as METRICS_PORT). */
export async function freePortRange(n: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const first = await freePort();
    if (first + n - 1 > 65535) continue;
    let free = true;
    for (let p = first; p < first + n && free; p++) free = await portFree(p);
    if (free) return first;
  }
  throw new Error(`no ${n} consecutive free ports found`);
}

/** Polls `fn` until it returns something truthy; the last error is named on timeout. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | null | undefined | false>,
  { timeoutMs = 15_000, intervalMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
