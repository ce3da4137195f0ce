#!/usr/bin/env node
import type { Config } from '../config.js';
import type { Deps } from '../deps.js';
import { duration, plural, progress, table, when } from './format.js';

/**
 * The operator's command line: `oura-ingest <command>` (or `npm run cli --
 * <command>`). Commands call the same operations as the admin API
 * (src/admin/). Exit codes: 0 done, 1 the operation failed, 2 bad input or
 * configuration. The service's modules are imported only once a command is
 * known to run, so `help` and bad input answer at once.
 */

class UsageError extends Error {}

interface Options {
  json: boolean;
  limit?: number;
  days?: number;
  detach?: boolean;
  takeOver?: boolean;
  since?: string;
  all?: boolean;
}

interface Command {
  usage: string;
  summary: string;
  /** Positional arguments after the command words: [min, max]. */
  args: [number, number];
  /** Refuses bad arguments before anything runs (exit code 2). */
  check?: (args: string[], opts: Options) => void;
  run: (deps: Deps, args: string[], opts: Options) => Promise<number>;
}

const out = (s: string) => process.stdout.write(s);
const json = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);

const COMMANDS: Record<string, Command> = {
  'users list': {
    usage: 'users list',
    summary: 'connected users with status and last activity',
    args: [0, 0],
    async run(deps, _args, opts) {
      const { listUsers } = await import('../admin/users.js');
      const users = await listUsers(deps);
      if (opts.json) json(users);
      else if (users.length === 0) out('no users\n');
      else {
        out(
          table(
            ['USER', 'STATUS', 'CONNECTED', 'LAST WEBHOOK', 'LAST FETCH', 'REASON'],
            users.map((u) => [u.id, u.status, when(u.connected_at), when(u.last_webhook_at), when(u.last_fetch_at), u.status_reason]),
          ),
        );
      }
      return 0;
    },
  },
  'users backfill': {
    usage: 'users backfill <user-id> [--days N] [--detach]',
    summary: 'load the last N days (default BACKFILL_DAYS) of every data type again; waits and shows progress',
    args: [1, 1],
    async run(deps, [userId], opts) {
      const { backfillUser, backfillProgressOf } = await import('../admin/users.js');
      const { defaultBackfillDays } = await import('../admin/users.js');
      const days = opts.days ?? defaultBackfillDays(deps);
      await backfillUser(deps, { userId: userId!, days });
      if (opts.detach) {
        if (opts.json) json({ user_id: userId, days, status: 'started' });
        else out(`backfill of ${days} days started for ${userId}\n`);
        return 0;
      }
      // Progress on stderr until every data type is done; the workers do the loading.
      let last = '';
      let lastChange = Date.now();
      for (;;) {
        const p = await backfillProgressOf(deps, userId!);
        const line = p ? `${p.types_done}/${p.types_total} types, ${p.windows_done}/${p.windows_total} windows, ${p.items} items, ${p.requests} requests` : 'starting';
        if (line !== last) {
          process.stderr.write(`backfill ${userId}: ${line}\n`);
          last = line;
          lastChange = Date.now();
        }
        if (p && p.status !== 'running') {
          if (opts.json) json(p);
          else out(`backfill ${p.status}: ${line}${p.failed.length ? `; failed: ${p.failed.map((f) => `${f.data_type} (${f.error})`).join(', ')}` : ''}\n`);
          return p.status === 'done' ? 0 : 1;
        }
        if (Date.now() - lastChange > 120_000) {
          process.stderr.write('no progress for 2 minutes: are the workers running? (the backfill stays queued)\n');
          return 1;
        }
        await new Promise((r) => setTimeout(r, 1000));
      }
    },
  },
  budget: {
    usage: 'budget',
    summary: "where Oura's request budget goes: by purpose, the background cadence reached, and the users this app could serve",
    args: [0, 0],
    async run(deps, _args, opts) {
      const { budgetReport } = await import('../budget/report.js');
      const r = await budgetReport(deps);
      if (opts.json) {
        json(r);
        return 0;
      }
      const { PURPOSES } = await import('../oura/client.js');
      out(`budget: ${r.limit.requests} requests per ${r.limit.windowS} s (${r.limit.perDay} a day); ${plural(r.activeUsers, 'active user')}\n\n`);
      out(
        table(
          ['PURPOSE', 'LAST HOUR', 'LAST DAY', 'BACKLOG', 'OLDEST WAIT'],
          [
            ...PURPOSES.map((p) => {
              const b = (r.backlog as Record<string, { items: number; oldestWaitS: number | null; unit: string }>)[p];
              return [p, String(r.lastHour[p]), String(r.lastDay[p]), b ? `${b.items} ${b.unit}` : '', b?.oldestWaitS != null ? duration(b.oldestWaitS) : ''];
            }),
            ['total', String(r.lastHour.total), String(r.lastDay.total), '', ''],
          ],
        ),
      );
      const perEvent = (v: number | null) => (v === null ? 'no events' : String(v));
      out(`\nlive requests per event: ${perEvent(r.liveRequestsPerEvent.lastHour)} (last hour), ${perEvent(r.liveRequestsPerEvent.lastDay)} (last day)\n\n`);
      out(
        table(
          ['CADENCE', 'TARGET', 'RUNS HOUR/DAY', 'REQ/RUN', 'AGE P50', 'AGE P99', 'AGE MAX', 'PAST TARGET'],
          (['timeseries', 'reconcile'] as const).map((k) => {
            const c = r.cadence[k];
            const age = (s: number | null) => (s === null ? '' : duration(s));
            return [k, duration(c.targetS), `${c.runsLastHour}/${c.runsLastDay}`, c.requestsPerRun === null ? '' : String(c.requestsPerRun), age(c.p50AgeS), age(c.p99AgeS), age(c.maxAgeS), String(c.overdue)];
          }),
        ),
      );
      const cap = r.capacity;
      if (cap.users === null || !cap.perUserDay) out('\ncapacity: no active user to measure\n');
      else {
        const p = cap.perUserDay;
        out(`\ncapacity: about ${cap.users} users at ${p.total} requests per user-day (live ${p.live}, backfill ${p.backfill}, time series ${p.timeseries}, reconcile ${p.reconcile})\n`);
        out(`how: ${cap.method}\n`);
      }
      return 0;
    },
  },
  'tokens reencrypt': {
    usage: 'tokens reencrypt',
    summary: 'key rotation: re-encrypt every stored token under the current TOKEN_ENCRYPTION_KEY',
    args: [0, 0],
    async run(deps, _args, opts) {
      const { reencryptTokens } = await import('../admin/tokens.js');
      const r = await reencryptTokens(deps, (done, total) => {
        if (done === total || done % 100 === 0) process.stderr.write(`re-encrypting ${done}/${total}\n`);
      });
      if (opts.json) json(r);
      else {
        out(`${r.users} users: ${r.reencrypted} re-encrypted, ${r.alreadyCurrent} already under the current key, ${r.unreadable.length} unreadable\n`);
        if (r.unreadable.length) out(`unreadable (no configured key opens them): ${r.unreadable.join(', ')}\n`);
      }
      return r.unreadable.length ? 1 : 0;
    },
  },
  'users delete': {
    usage: 'users delete <user-id>',
    summary: "disconnect a user: revoke the token at Oura, delete the user's tokens and data",
    args: [1, 1],
    async run(deps, [userId], opts) {
      const { disconnectUser } = await import('../admin/users.js');
      const r = await disconnectUser(deps, { userId: userId!, onProgress: (step) => process.stderr.write(`${step}…\n`) });
      if (opts.json) json(r);
      else {
        const revoked = r.revoked ? 'token revoked at Oura' : 'token NOT revoked at Oura (see the log)';
        out(`disconnected ${r.user_id}: ${revoked}, ${plural(r.deleted_rows, 'row')} deleted\n`);
      }
      return 0;
    },
  },
  'subscriptions list': {
    usage: 'subscriptions list',
    summary: "the application's webhook subscriptions at Oura",
    args: [0, 0],
    async run(deps, _args, opts) {
      const { listSubscriptions } = await import('../admin/subscriptions.js');
      const subs = await listSubscriptions(deps);
      if (opts.json) json(subs);
      else if (subs.length === 0) out('no subscriptions (run: subscriptions sync)\n');
      else {
        out(
          table(
            ['DATA TYPE', 'EVENT', 'EXPIRES', 'ID', 'CALLBACK'],
            subs.map((s) => [s.data_type, s.event_type, when(s.expiration_time), s.id, s.ours ? s.callback_url : `${s.callback_url} (not ours)`]),
          ),
        );
        out(`${plural(subs.length, 'subscription')}\n`);
      }
      return 0;
    },
  },
  'subscriptions sync': {
    usage: 'subscriptions sync [--take-over]',
    summary: 'one subscription per ingested (event type, data type), renewed within 7 days of expiry; other callbacks left alone',
    args: [0, 0],
    async run(deps, _args, opts) {
      const { syncAppSubscriptions } = await import('../admin/subscriptions.js');
      const r = await syncAppSubscriptions(deps, { onProgress: progress('syncing subscriptions'), takeOver: opts.takeOver === true });
      if (opts.json) json(r);
      else {
        const rows = (['created', 'replaced', 'renewed', 'removed', 'left'] as const).flatMap((what) =>
          r[what].map((s) => [what === 'left' ? 'left alone' : what, s.data_type, s.event_type, when(s.expiration_time), s.id, s.callback_url]),
        );
        if (rows.length > 0) out(table(['CHANGE', 'DATA TYPE', 'EVENT', 'EXPIRES', 'ID', 'CALLBACK'], rows));
        for (const f of r.failed) out(`failed: ${f.data_type}/${f.event_type}: ${f.error}\n`);
        out(
          `created ${r.created.length}, replaced ${r.replaced.length}, renewed ${r.renewed.length}, ` +
            `removed ${r.removed.length}, unchanged ${r.unchanged.length}, left alone ${r.left.length}, failed ${r.failed.length}\n`,
        );
        if (r.left.length > 0) out(`${plural(r.left.length, 'subscription')} calling back another URL left alone (--take-over repoints them)\n`);
      }
      if (r.failed.length > 0) {
        process.stderr.write(`error: ${plural(r.failed.length, 'subscription')} could not be synced; first: ${r.failed[0]!.error}\n`);
        return 1;
      }
      return 0;
    },
  },
  'changes tail': {
    usage: 'changes tail [--since CURSOR]',
    summary: 'follow the change feed (oura.changes) until interrupted; from now, or after CURSOR (0: the oldest kept)',
    args: [0, 0],
    async run(deps, _args, opts) {
      const { feedEnd, formatCursor, parseCursor } = await import('../db/changes.js');
      const { followChanges } = await import('../admin/changes.js');
      const from = opts.since === undefined ? await feedEnd(deps.db) : parseCursor(opts.since);
      if (!from) throw new Error(`bad cursor ${opts.since}`); // parse() checked it
      const stop = new AbortController();
      for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());
      if (!opts.json) process.stderr.write(`following oura.changes after ${formatCursor(from)} (Ctrl-C stops)\n`);
      for await (const c of followChanges(deps, from, { signal: stop.signal })) {
        const cursor = formatCursor(c);
        if (opts.json) {
          out(`${JSON.stringify({ cursor, ...c, changed_at: c.changed_at.toISOString() })}\n`);
          continue;
        }
        const what = c.kind === 'document' ? `${c.object_id}${c.day ? ` (${c.day})` : ''}` : c.kind === 'timeseries' ? `${c.range_start} .. ${c.range_end}` : '';
        out(`${cursor}  ${c.changed_at.toISOString()}  ${c.user_id}  ${c.kind}.${c.op}  ${c.data_type ?? ''}  ${what}`.trimEnd() + '\n');
      }
      return 0;
    },
  },
  'failed list': {
    usage: 'failed list [--limit N]',
    summary: 'dead letters: event jobs that failed for good',
    args: [0, 0],
    async run(deps, _args, opts) {
      const { listFailed } = await import('../admin/failed.js');
      const r = await listFailed(deps, { limit: opts.limit });
      if (opts.json) json(r);
      else if (r.total === 0) out('no failed jobs\n');
      else {
        out(
          table(
            ['JOB', 'EVENT', 'DATA TYPE', 'USER', 'OBJECT', 'ATTEMPTS', 'FAILED AT', 'REASON'],
            r.failed.map((f) => [
              f.job_id,
              f.event?.event_type,
              f.event?.data_type,
              f.event?.user_id,
              f.event?.object_id,
              f.attempts_made,
              when(f.failed_at),
              f.failed_reason,
            ]),
          ),
        );
        out(`${r.failed.length} of ${plural(r.total, 'failed job')}\n`);
      }
      return 0;
    },
  },
  'failed replay': {
    usage: 'failed replay [job-id…]',
    summary: 'queue failed jobs again (all of them when no id is given)',
    args: [0, Infinity],
    async run(deps, ids, opts) {
      const { replayFailed } = await import('../admin/failed.js');
      const r = await replayFailed(deps, { ids: ids.length > 0 ? ids : undefined, onProgress: progress('replaying') });
      if (opts.json) json(r);
      else out(`replayed ${plural(r.replayed, 'job')}\n`);
      return 0;
    },
  },
  'webhooks dead': {
    usage: 'webhooks dead [--limit N]',
    summary: 'outbound webhook dead letters: messages the partner did not take within the retry schedule',
    args: [0, 0],
    async run(deps, _args, opts) {
      const { listDeadWebhooks } = await import('../admin/partner-webhooks.js');
      const r = await listDeadWebhooks(deps, { limit: opts.limit });
      if (opts.json) json(r);
      else if (r.total === 0) out('no dead outbound webhooks\n');
      else {
        out(
          table(
            ['SEQ', 'TYPE', 'USER', 'DATA TYPE', 'OBJECT', 'ATTEMPTS', 'DEAD SINCE', 'LAST ERROR'],
            r.dead.map((d) => [String(d.seq), d.event_type, d.user_id, d.data.data_type as string | undefined, d.data.object_id as string | undefined, d.attempts, when(d.finished_at), d.last_error]),
          ),
        );
        out(`${r.dead.length} of ${plural(r.total, 'dead outbound webhook')}\n`);
      }
      return 0;
    },
  },
  'webhooks replay': {
    usage: 'webhooks replay <seq…> | --all',
    summary: 'send outbound webhook dead letters again (same webhook-id), with fresh attempts',
    args: [0, Infinity],
    check(args, opts) {
      if (Boolean(opts.all) === (args.length > 0)) throw new UsageError('webhooks replay needs seqs or --all (not both)');
      const bad = args.find((a) => !/^[1-9]\d{0,17}$/.test(a));
      if (bad !== undefined) throw new UsageError(`not a seq: ${bad}`);
    },
    async run(deps, args, opts) {
      const seqs = args.map(Number);
      const { replayDeadWebhooks } = await import('../admin/partner-webhooks.js');
      const r = await replayDeadWebhooks(deps, opts.all ? { all: true } : { seqs });
      if (opts.json) json(r);
      else out(`replayed ${plural(r.replayed, 'outbound webhook')}\n`);
      return 0;
    },
  },
};

function help(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length), 'help'.length);
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`);
  return [
    'usage: oura-ingest <command> [--json]   (or: npm run cli -- <command>)',
    '',
    'commands:',
    ...lines,
    `  ${'help'.padEnd(width)}  this text`,
    '',
    'options:',
    '  --json       print JSON instead of tables',
    '  --limit N    failed list, webhooks dead: at most N (default 100)',
    '  --all        webhooks replay: every dead letter',
    '  --days N     users backfill: days of history to load (default BACKFILL_DAYS)',
    '  --detach     users backfill: start it and return without waiting',
    '  --take-over  subscriptions sync: also repoint subscriptions that call back another URL',
    '  --since C    changes tail: start after cursor C (0: the oldest change kept); default: new changes only',
    '               with --json, one JSON object per line, each with its cursor',
    '',
    'Configuration comes from the environment, as for the service (DATABASE_URL, REDIS_URL, …).',
    'Exit codes: 0 done, 1 the operation failed, 2 bad input or configuration.',
    '',
  ].join('\n');
}

function parse(argv: string[]): { command: 'help' } | { command: Command; args: string[]; opts: Options } {
  const words: string[] = [];
  const opts: Options = { json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') opts.json = true;
    else if (a === '--help' || a === '-h') return { command: 'help' };
    else if (a === '--limit' || a.startsWith('--limit=')) {
      const v = a === '--limit' ? argv[++i] : a.slice('--limit='.length);
      const n = Number(v);
      if (!v || !Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError('--limit expects a whole number from 1 to 1000');
      opts.limit = n;
    } else if (a === '--days' || a.startsWith('--days=')) {
      const v = a === '--days' ? argv[++i] : a.slice('--days='.length);
      const n = Number(v);
      if (!v || !Number.isInteger(n) || n < 1 || n > 3650) throw new UsageError('--days expects a whole number from 1 to 3650');
      opts.days = n;
    } else if (a === '--detach') opts.detach = true;
    else if (a === '--take-over') opts.takeOver = true;
    else if (a === '--since' || a.startsWith('--since=')) {
      const v = a === '--since' ? argv[++i] : a.slice('--since='.length);
      if (!v || !/^(0|\d{1,20}-\d{1,18})$/.test(v)) {
        throw new UsageError('--since expects a cursor as changes tail prints it (<txid>-<seq>), or 0 for the oldest change kept');
      }
      opts.since = v;
    }
    else if (a === '--all') opts.all = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else words.push(a);
  }
  if (words.length === 0) throw new UsageError('no command given');
  if (words[0] === 'help') return { command: 'help' };
  const name = words.slice(0, 2).join(' ');
  const command = COMMANDS[name];
  if (!command) {
    const group = Object.keys(COMMANDS).filter((k) => k.startsWith(`${words[0]} `));
    if (group.length > 0) {
      const subs = group.map((k) => k.split(' ')[1]).join(', ');
      throw new UsageError(words[1] ? `unknown ${words[0]} command "${words[1]}" (one of: ${subs})` : `${words[0]} needs a command: ${subs}`);
    }
    throw new UsageError(`unknown command "${words[0]}"`);
  }
  const args = words.slice(2);
  const [min, max] = command.args;
  if (args.length < min) throw new UsageError(`missing argument: ${command.usage}`);
  if (args.length > max) throw new UsageError(`too many arguments: ${command.usage}`);
  command.check?.(args, opts);
  return { command, args, opts };
}

/** One line for any error: what an operator can act on, never a stack. */
function describe(err: unknown): string {
  const e = err as { name?: string; message?: string; code?: string };
  if (e.name === 'OuraApiError') return `Oura: ${e.message}`;
  const message = (e.message ?? String(err)).split('\n')[0]!.trim();
  return message || e.code || 'unexpected error';
}

/** The service logs at info; the CLI only wants warnings and worse unless asked for more. */
const cliLogLevel = (level: Config['LOG_LEVEL']) => (level === 'info' ? 'warn' : level);

async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${err.message} (see: oura-ingest help)\n`);
    return 2;
  }
  if (parsed.command === 'help') {
    out(help());
    return 0;
  }
  const { loadConfig, orExit } = await import('../config.js');
  const config = orExit(() => loadConfig());
  const [{ createDeps }, { createLogger }, { default: pino }] = await Promise.all([
    import('../deps.js'),
    import('../logger.js'),
    import('pino'),
  ]);
  const log = createLogger(cliLogLevel(config.LOG_LEVEL), pino.destination({ dest: 2, sync: true }));
  const deps = createDeps(config, { log, dbPoolSize: 2 });
  try {
    return await parsed.command.run(deps, parsed.args, parsed.opts);
  } catch (err) {
    process.stderr.write(`error: ${describe(err)}\n`);
    return 1;
  } finally {
    await deps.close();
  }
}

process.exit(await main(process.argv.slice(2)));
