import type { Deps } from '../deps.js';
import { cursorOf, readChanges, type Change, type ChangeCursor } from '../db/changes.js';

export interface FollowOptions {
  /** Stops the walk: the generator returns after the batch in hand. */
  signal: AbortSignal;
  /** Looks again this often without a notification (default 1 s): a change held back by a running transaction shows when it ends, which notifies nobody. */
  pollMs?: number;
  batch?: number;
}

/**
 * Every change after `from`, in feed order, then each new one as it commits,
 * until `signal` aborts: what `changes tail` prints. Woken by NOTIFY
 * oura_changes on a connection of its own, and by a poll.
 */
export async function* followChanges(deps: Pick<Deps, 'db' | 'pool'>, from: ChangeCursor, opts: FollowOptions): AsyncGenerator<Change> {
  const client = await deps.pool.connect();
  let wake: (() => void) | null = null;
  const onNotify = () => wake?.();
  client.on('notification', onNotify);
  try {
    await client.query('listen oura_changes');
    let cursor = from;
    while (!opts.signal.aborted) {
      const batch = await readChanges(deps.db, cursor, opts.batch ?? 500);
      for (const change of batch) {
        yield change;
        cursor = cursorOf(change);
      }
      if (batch.length > 0) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, opts.pollMs ?? 1000);
        opts.signal.addEventListener('abort', done, { once: true });
        wake = done;
        function done() {
          clearTimeout(timer);
          opts.signal.removeEventListener('abort', done);
          wake = null;
          resolve();
        }
      });
    }
  } finally {
    client.off('notification', onNotify);
    await client.query('unlisten oura_changes').catch(() => {});
    client.release();
  }
}
