import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { eventually } from '../../dev/util.js';

/**
 * Redis servers of a test's own, started from the machine's redis-server in a
 * directory of the test's own (a full sync writes an RDB file, a cluster node
 * its nodes.conf); stop() kills them and removes the directory.
 */
export function localRedisServers(label: string) {
  const dir = mkdtempSync(path.join(tmpdir(), `oura-${label}-`));
  const children: ChildProcess[] = [];
  return {
    dir,
    /** `redis-server <args>` as given (a config file, `--sentinel`, …). */
    spawn(args: string[]): ChildProcess {
      const child = spawn('redis-server', args, { stdio: 'ignore' });
      children.push(child);
      return child;
    },
    /** A server on 127.0.0.1:`port` that keeps nothing on disk, with `args` on top. */
    server(port: number, args: string[] = []): ChildProcess {
      return this.spawn(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args]);
    },
    /** A connection to the server on `port`, once it answers. */
    async connect(port: number): Promise<Redis> {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 200 });
      r.on('error', () => {}); // refused until the server listens
      await eventually(`redis on ${port}`, async () => (await r.ping().catch(() => null)) === 'PONG', { timeoutMs: 10_000, intervalMs: 100 });
      return r;
    },
    stop(): void {
      for (const c of children) c.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
