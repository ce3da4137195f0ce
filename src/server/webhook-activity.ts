import type { UsersRepo } from '../db/users.js';

/**
 * Remembers when each user's latest webhook arrived and writes it to
 * oura.users.last_webhook_at every `everyMs` in one statement, off the
 * acceptance path. What a crash loses is at most one interval of this
 * timestamp (the events themselves are recorded before their 2xx).
 */
export function createWebhookActivity(users: Pick<UsersRepo, 'touchWebhooks'>, log: { warn: (obj: object, msg: string) => void }, everyMs = 1000) {
  let seen = new Map<string, number>();
  let flushing: Promise<void> | null = null;

  async function write(): Promise<void> {
    if (seen.size === 0) return;
    const batch = seen;
    seen = new Map();
    try {
      await users.touchWebhooks([...batch].map(([id, at]) => ({ id, at: new Date(at) })));
    } catch (err) {
      // Keep them for the next try, unless newer ones arrived meanwhile.
      for (const [id, at] of batch) if (!seen.has(id)) seen.set(id, at);
      log.warn({ err, users: batch.size }, 'could not record webhook activity; will retry');
    }
  }
  function flush(): Promise<void> {
    flushing ??= write().finally(() => {
      flushing = null;
    });
    return flushing;
  }
  const timer = setInterval(() => void flush(), everyMs);
  timer.unref();

  return {
    note(userId: string, at = Date.now()): void {
      seen.set(userId, at);
    },
    flush,
    /** Stops the timer and writes what is left. */
    async close(): Promise<void> {
      clearInterval(timer);
      await flushing;
      await flush();
    },
  };
}
export type WebhookActivity = ReturnType<typeof createWebhookActivity>;
