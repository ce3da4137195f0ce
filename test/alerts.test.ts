import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../dev/service.js';

/**
 * The alerting pack in deploy/: the rules load and pass their unit tests
 * (deploy/prometheus/alerts.test.yml) under promtool, and every query of
 * the Grafana dashboard is valid PromQL. Which metrics they name is checked
 * against a real scrape in observability.test.ts.
 */
const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const skip = promtool.error ? 'promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it' : false;

function run(args: string[]) {
  const r = spawnSync('promtool', args, { cwd: path.join(repoRoot, 'deploy', 'prometheus'), encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('the alert rules load, and fire as their unit tests say', { skip }, () => {
  const check = run(['check', 'rules', 'alerts.yml']);
  assert.equal(check.code, 0, check.out);
  const unit = run(['test', 'rules', 'alerts.test.yml']);
  assert.equal(unit.code, 0, unit.out);
  assert.match(unit.out, /SUCCESS/);
  // Every alert has a test that raises it.
  const alerts = [...readFileSync(path.join(repoRoot, 'deploy/prometheus/alerts.yml'), 'utf8').matchAll(/^\s+- alert: (\S+)$/gm)].map((m) => m[1]!);
  const tested = new Set([...readFileSync(path.join(repoRoot, 'deploy/prometheus/alerts.test.yml'), 'utf8').matchAll(/^\s+alertname: (\S+)$/gm)].map((m) => m[1]!));
  assert.ok(alerts.length >= 8);
  assert.deepEqual(alerts.filter((a) => !tested.has(a)), [], 'alerts without a unit test');
});

test("every query of the Grafana dashboard is valid PromQL", { skip }, () => {
  const dashboard = JSON.parse(readFileSync(path.join(repoRoot, 'deploy/grafana/oura-ingest.json'), 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
  assert.ok(exprs.length >= 15);
  // promtool parses expressions when it checks rules: one recording rule per query.
  const dir = mkdtempSync(path.join(tmpdir(), 'oura-dashboard-'));
  try {
    const rules = exprs.map((e, i) => `      - record: dashboard_query_${i}\n        expr: ${JSON.stringify(e.expr)}`).join('\n');
    writeFileSync(path.join(dir, 'dashboard.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules}\n`);
    const r = spawnSync('promtool', ['check', 'rules', path.join(dir, 'dashboard.yml')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
