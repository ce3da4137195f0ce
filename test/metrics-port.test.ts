import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { eventually, freePortRange, startStack, type Stack } from './helpers/stack.js';

/**
 * Several worker processes on one host, as deployed (compiled, from dist/),
 * all given the same METRICS_PORT range: each serves /metrics and /readyz on
 * a port of its own and says which in its start-up line; one more than the
 * range holds works on, and logs that it serves none.
 */
let stack: Stack;
before(async () => {
  stack = await startStack({ label: 'ports', inProcessWorker: false });
});
after(async () => {
  await stack?.close();
});

/** The JSON lines a process writes, as they come. */
function lines(child: ChildProcess): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let rest = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop()!;
    for (const p of parts) if (p.startsWith('{')) out.push(JSON.parse(p) as Record<string, unknown>);
  });
  return out;
}

test('workers sharing a METRICS_PORT range each serve /metrics on a port of their own, announced in the log', async (t) => {
  const first = await freePortRange(2);
  const range = `${first}-${first + 1}`;
  const logs = [0, 1, 2].map(() => lines(stack.spawnProcess('worker', { METRICS_PORT: range })));
  const started = await eventually(
    'three workers started',
    async () => {
      const s = logs.map((l) => l.find((e) => e.msg === 'oura-ingest started'));
      return s.every(Boolean) ? (s as Array<Record<string, unknown>>) : null;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );
  const ports = started.map((s) => s.metricsPort).filter((p): p is number => typeof p === 'number');
  assert.deepEqual([...ports].sort((a, b) => a - b), [first, first + 1], `announced: ${JSON.stringify(ports)}`);
  for (const port of ports) {
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^oura_ingest_queue_jobs\{/m);
    assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
  }

  // The third found the range taken: it says so in one error naming the range, and works on.
  const unserved = logs[started.findIndex((s) => s.metricsPort === undefined)]!;
  const errors = unserved.filter((e) => e.level === 50);
  assert.equal(errors.length, 1, JSON.stringify(errors));
  assert.match(String(errors[0]!.msg), /^metrics server could not listen/);
  assert.equal(errors[0]!.metricsPorts, range);
  await eventually('three workers take jobs', async () => (await stack.deps.queue.getWorkersCount()) >= 3, { timeoutMs: 15_000, intervalMs: 100 });
  t.diagnostic(`METRICS_PORT=${range}: workers on ${ports.join(', ')} and one without`);
});
