import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { DOCUMENT_TYPES, documentTypes, WEBHOOK_OPERATIONS } from '../src/oura/registry.js';
import { eventJobId } from '../src/queues/index.js';
import { serviceArgs } from './helpers/env.js';
import { eventually, repoRoot, startStack, type Stack } from './helpers/stack.js';

const WANTED = DOCUMENT_TYPES.filter((t) => documentTypes[t].webhook).length * WEBHOOK_OPERATIONS.length;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The tests are independent of each other and run at once: each spawns CLI processes, which spend most
// of their time loading modules.
describe('CLI (npm run cli -- <command>)', { concurrency: true }, () => {
  let stack: Stack;

  /** Runs the CLI as its own process with the stack's environment. */
  function cli(args: string[], env: Record<string, string> = stack.env): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, serviceArgs('cli/main', args), {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** A refused command: non-zero exit, nothing on stdout, exactly one line on stderr. */
  function assertOneLineError(r: Run, code: number, pattern: RegExp, what: string) {
    assert.equal(r.code, code, `${what}: exit code (stderr: ${r.stderr})`);
    assert.equal(r.stdout, '', `${what}: nothing on stdout`);
    assert.equal(r.stderr.endsWith('\n') && r.stderr.split('\n').length, 2, `${what}: one line on stderr: ${JSON.stringify(r.stderr)}`);
    assert.match(r.stderr, pattern, what);
  }

  async function documentRow(type: string, id: string) {
    const r = await stack.deps.pool.query(`select * from oura."${type}" where id = $1`, [id]);
    return r.rows[0] ?? null;
  }

  before(async () => {
    stack = await startStack({ label: 'cli' });
  });
  after(async () => {
    await stack?.close();
  });

  test('help lists every command; bad input is one line on stderr and a non-zero exit', async () => {
    const noDatabase = Object.fromEntries(Object.entries(stack.env).filter(([k]) => k !== 'DATABASE_URL'));
    const [help, unknown, group, missing, option, config, nobody] = await Promise.all([
      cli(['help']),
      cli(['frobnicate']),
      cli(['users']),
      cli(['users', 'delete']),
      cli(['users', 'list', '--verbose']),
      cli(['users', 'list'], noDatabase),
      cli(['users', 'delete', 'nobody']),
    ]);
    assert.equal(help.code, 0);
    for (const c of ['users list', 'changes tail', 'users backfill <user-id>', 'users delete <user-id>', 'subscriptions list', 'subscriptions sync', 'failed list', 'failed replay', '--json']) {
      assert.ok(help.stdout.includes(c), `help mentions ${c}`);
    }
    assertOneLineError(unknown, 2, /^error: unknown command "frobnicate"/, 'unknown command');
    assertOneLineError(group, 2, /^error: users needs a command: list, backfill, delete/, 'group without command');
    assertOneLineError(missing, 2, /^error: missing argument: users delete <user-id>/, 'missing id');
    assertOneLineError(option, 2, /^error: unknown option --verbose/, 'unknown option');
    assertOneLineError(config, 2, /^config: DATABASE_URL is required but not set/, 'missing configuration');
    assertOneLineError(nobody, 1, /^error: no user nobody$/m, 'unknown user');
  });

  test('subscriptions sync creates them with progress; subscriptions list shows them', async () => {
    const first = await cli(['subscriptions', 'sync']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^CHANGE\s+DATA TYPE\s+EVENT\s+EXPIRES\s+ID\s+CALLBACK\n/);
    assert.match(first.stdout, new RegExp(`created ${WANTED}, replaced 0, renewed 0, removed 0, unchanged 0, left alone 0, failed 0\\n$`));
    assert.match(first.stderr, new RegExp(`syncing subscriptions ${WANTED}/${WANTED}`), 'progress on stderr');
    assert.equal((await stack.simJson('GET', '/_sim/subscriptions')).length, WANTED);

    const list = await cli(['subscriptions', 'list']);
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^DATA TYPE\s+EVENT\s+EXPIRES\s+ID\s+CALLBACK$/);
    assert.equal(lines.length, WANTED + 2, 'header, one line per subscription, total');
    assert.ok(lines.some((l) => /^daily_sleep\s+create\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+\S+\s+http:\/\/127\.0\.0\.1:\d+\/webhooks\/oura$/.test(l)));
    assert.equal(lines.at(-1), `${WANTED} subscriptions`);

    // Another deployment of the app points one pair elsewhere: left alone, and said so; --take-over repoints it.
    const theirs = [...stack.sim.state.subscriptions.values()].find((s) => s.data_type === 'daily_sleep' && s.event_type === 'create')!;
    theirs.callback_url = 'https://staging.example/webhooks/oura';
    const polite = await cli(['subscriptions', 'sync']);
    assert.equal(polite.code, 0, polite.stderr);
    assert.match(polite.stdout, new RegExp(`\\nleft alone\\s+daily_sleep\\s+create\\s+.*${theirs.id}\\s+https://staging\\.example/webhooks/oura\\n`));
    assert.match(polite.stdout, /left alone 1, failed 0\n1 subscription calling back another URL left alone \(--take-over repoints them\)\n$/);
    const takeOver = await cli(['subscriptions', 'sync', '--take-over']);
    assert.equal(takeOver.code, 0, takeOver.stderr);
    assert.match(takeOver.stdout, /left alone 0, failed 0\n$/);
    assert.equal(takeOver.stdout.includes(theirs.id), true, 'the change names it');
    assert.ok((await stack.simJson('GET', '/_sim/subscriptions')).every((s: { callback_url: string }) => !s.callback_url.includes('staging')));
  });

  test('changes tail follows the feed: new changes as they commit, or everything after a cursor as JSON lines', async () => {
    const userId = await stack.connectUser();
    const follow = (args: string[]) => {
      const child = spawn(process.execPath, serviceArgs('cli/main', ['changes', 'tail', ...args]), {
        cwd: repoRoot,
        env: { PATH: process.env.PATH ?? '', ...stack.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const run = { stdout: '', stderr: '', code: null as number | null };
      child.stdout.on('data', (d: Buffer) => (run.stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (run.stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve((run.code = code))));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      return {
        run,
        async stop() {
          child.kill('SIGINT');
          const code = await exited;
          clearTimeout(timer);
          return code;
        },
      };
    };
    const fromNow = follow([]);
    const fromStart = follow(['--since', '0', '--json']);
    try {
      await eventually('tail is following', async () => /^following oura\.changes after \d+-\d+ \(Ctrl-C stops\)\n$/.test(fromNow.run.stderr));
      assert.equal(fromNow.run.stdout, '', 'changes before it started are not shown');
      await stack.deps.documents.upsert('tag', userId, [{ id: 'tail-tag', day: '2026-12-01', text: 'shown' }]);
      await eventually('the new change is printed', async () => fromNow.run.stdout.includes('tail-tag'));
      const printed = fromNow.run.stdout.split('\n').find((l) => l.includes('tail-tag'));
      assert.match(printed ?? '', new RegExp(`^\\d+-\\d+  \\d{4}-\\d\\d-\\d\\dT\\S+Z  ${userId}  document\\.create  tag  tail-tag \\(2026-12-01\\)$`));
      assert.equal(fromNow.run.stdout.includes('shown'), false, 'ids, never content');

      await eventually('the older changes are printed', async () => fromStart.run.stdout.includes('tail-tag'));
      const lines = fromStart.run.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { cursor: string; user_id: string; kind: string; op: string; object_id: string | null });
      assert.ok(lines.some((c) => c.user_id === userId && c.kind === 'user' && c.op === 'connected'), 'user.connected from before it started');
      assert.ok(lines.every((c) => /^\d+-\d+$/.test(c.cursor)));
      const at = lines.findIndex((c) => c.object_id === 'tail-tag');
      const resumed = follow(['--since', lines[at - 1]!.cursor, '--json']);
      await eventually('resumed after the cursor', async () => resumed.run.stdout.includes('tail-tag'));
      assert.equal(await resumed.stop(), 0);
      assert.equal(JSON.parse(resumed.run.stdout.split('\n')[0]!).cursor, lines[at]!.cursor, 'it starts right after the cursor');
    } finally {
      assert.equal(await fromNow.stop(), 0, 'Ctrl-C ends it cleanly');
      assert.equal(await fromStart.stop(), 0);
    }
    assertOneLineError(await cli(['changes', 'tail', '--since', 'yesterday']), 2, /^error: --since expects a cursor as changes tail prints it/, 'bad cursor');
  });

  test('users list shows the user; users delete disconnects one', async () => {
    const userId = await stack.connectUser();
    const leaving = await stack.connectUser();
    const users = await cli(['users', 'list']);
    assert.equal(users.code, 0, users.stderr);
    assert.match(users.stdout, /^USER\s+STATUS\s+CONNECTED\s+LAST WEBHOOK\s+LAST FETCH\s+REASON\n/);
    for (const id of [userId, leaving]) {
      assert.match(users.stdout, new RegExp(`\\n${id}\\s+active\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\dZ\\s`));
    }
    assert.equal(users.stdout.includes('v1.'), false, 'no token ciphertext');

    const deleted = await cli(['users', 'delete', leaving]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, new RegExp(`^disconnected ${leaving}: token revoked at Oura, \\d+ rows? deleted\\n$`));
    assert.equal(await stack.deps.users.get(leaving), null);
    assert.equal((await stack.deps.users.get(userId))?.status, 'active');
  });

  test('budget shows requests by purpose, the cadence against its targets and a capacity estimate', async () => {
    await stack.connectUser();
    const r = await cli(['budget']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^budget: 5000 requests per 300 s \(1440000 a day\); \d+ active users?\n/);
    assert.match(r.stdout, /\nPURPOSE\s+LAST HOUR\s+LAST DAY\s+BACKLOG\s+OLDEST WAIT\n/);
    // Connecting a user reads personal_info: a token-purpose request.
    assert.match(r.stdout, /\ntoken\s+[1-9]\d*\s+[1-9]\d*\s/);
    assert.match(r.stdout, /\ntimeseries\s+1d 0h\s+\d+\/\d+/);
    assert.match(r.stdout, /\nreconcile\s+7d 0h\s+\d+\/\d+/);
    assert.match(r.stdout, /\ncapacity: about \d+ users at [\d.]+ requests per user-day/);
    const j = await cli(['budget', '--json']);
    assert.equal(j.code, 0, j.stderr);
    const report = JSON.parse(j.stdout) as { limit: { perDay: number }; capacity: { method: string } };
    assert.equal(report.limit.perDay, 1_440_000);
    assert.match(report.capacity.method, /daily budget/);
  });

  test('failed list shows a dead letter; failed replay re-queues it and the document lands', async () => {
    const userId = await stack.connectUser();
    // A dead letter: Oura answers 500 for one document until the job's attempts run out.
    const doc = await stack.simJson('POST', `/_sim/users/${userId}/documents/workout`, {});
    const fault = await stack.simJson('POST', '/_sim/faults', { status: 500, count: 1000, path: `/v2/usercollection/workout/${doc.id}` });
    await stack.simJson('POST', '/_sim/events', { event_type: 'create', data_type: 'workout', object_id: doc.id, user_id: userId, callback_url: `${stack.apiUrl}/webhooks/oura` });
    const rows = await eventually('its event admitted', async () => {
      const r = await stack.deps.pool.query<{ id: string }>('select id from oura.webhook_events where object_id = $1', [doc.id]);
      return r.rows.length > 0 && r.rows;
    });
    const jobId = eventJobId(Number(rows[0]!.id));
    // Run the retries back to back (promote skips the backoff) until the job is dead-lettered.
    await eventually(
      'job failed for good',
      async () => {
        const job = await stack.deps.queue.getJob(jobId);
        const state = await job?.getState();
        if (state === 'delayed') await job!.promote().catch(() => {});
        if (state !== 'failed') return false;
        const e = await stack.deps.pool.query('select 1 from oura.webhook_events where object_id = $1 and status = $2', [doc.id, 'failed']);
        return e.rowCount === 1;
      },
      { intervalMs: 20 },
    );

    const failed = await cli(['failed', 'list']);
    assert.equal(failed.code, 0, failed.stderr);
    assert.match(failed.stdout, /^JOB\s+EVENT\s+DATA TYPE\s+USER\s+OBJECT\s+ATTEMPTS\s+FAILED AT\s+REASON\n/);
    assert.match(failed.stdout, new RegExp(`\\n${jobId}\\s+create\\s+workout\\s+${userId}\\s+${doc.id}\\s+\\d+\\s+\\S+ \\S+\\s+.*500`));
    assert.match(failed.stdout, /\n1 of 1 failed job\n$/);

    stack.sim.state.faults.splice(stack.sim.state.faults.findIndex((f) => f.id === fault.id), 1);
    const replay = await cli(['failed', 'replay', jobId, '--json']);
    assert.equal(replay.code, 0, replay.stderr);
    assert.deepEqual(JSON.parse(replay.stdout), { replayed: 1 });
    const stored = await eventually('replayed document stored', () => documentRow('workout', doc.id));
    assert.deepEqual(stored.document, doc);
    assert.equal(await stack.deps.queue.getFailedCount(), 0);
  });
  test('users backfill waits and shows progress; bad --days is refused', async () => {
    const { id: simUser } = await stack.simJson('POST', '/_sim/users', { historyDays: 3 });
    const userId = await stack.connectUser(simUser);
    const [run, bad, nobody] = await Promise.all([
      cli(['users', 'backfill', userId, '--days', '2']),
      cli(['users', 'backfill', userId, '--days', 'lots']),
      cli(['users', 'backfill', 'nobody', '--detach']),
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^backfill done: 18\/18 types, \d+\/\d+ windows, \d+ items, \d+ requests\n$/);
    assert.match(run.stderr, /^backfill [^:]+: /m, 'progress on stderr');
    assertOneLineError(bad, 2, /^error: --days expects a whole number from 1 to 3650/, 'bad --days');
    assertOneLineError(nobody, 1, /^error: no user nobody$/m, 'unknown user');
  });
});
