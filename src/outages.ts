import type { Logger } from 'pino';

/** While a connection stays down, its failure is logged again this often. */
const REMIND_MS = 60_000;

/** While a connection with a probe stays down, the probe runs this often. */
const PROBE_MS = 2000;

/**
 * Logs a connection's outages rather than each of its errors (a client
 * retrying every few hundred milliseconds would otherwise write a line each
 * time): one line when it first fails, one a minute while it stays down, one
 * when it works again. A connection that says so itself (ioredis `ready`)
 * calls `recovered`; one that may not (a Redis Cluster client whose master
 * changed under it) gives a `probe`, a command that succeeds once the
 * outage is over, run every few seconds while it lasts.
 */
export function createOutageLog(log: Logger, connection: string, opts: { probe?: () => Promise<unknown> } = {}) {
  let downSince: number | null = null;
  let lastLogged = 0;
  let probeTimer: NodeJS.Timeout | null = null;
  let closed = false;
  const probeLater = (probe: () => Promise<unknown>) => {
    probeTimer = setTimeout(() => {
      probe().then(
        () => self.recovered(),
        () => {
          if (downSince !== null && !closed) probeLater(probe);
        },
      );
    }, PROBE_MS);
    probeTimer.unref();
  };
  const self = {
    error(err: unknown): void {
      const now = Date.now();
      if (downSince === null) {
        downSince = lastLogged = now;
        log.error({ err, connection }, `${connection}: connection failed`);
        if (opts.probe && !closed) probeLater(opts.probe);
      } else if (now - lastLogged >= REMIND_MS) {
        lastLogged = now;
        log.error({ err, connection, downForS: Math.round((now - downSince) / 1000) }, `${connection}: still failing`);
      }
    },
    recovered(): void {
      if (probeTimer) clearTimeout(probeTimer);
      probeTimer = null;
      if (downSince === null) return;
      log.info({ connection, downForS: Math.round((Date.now() - downSince) / 1000) }, `${connection}: connection restored`);
      downSince = null;
    },
    /** Stops probing (the connection is being closed). */
    close(): void {
      closed = true;
      if (probeTimer) clearTimeout(probeTimer);
    },
  };
  return self;
}
export type OutageLog = ReturnType<typeof createOutageLog>;

/** Something that reports errors (an ioredis client, a BullMQ queue, a pg pool) and, optionally, that it works again. */
interface Watched {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Routes `source`'s errors to `outages`, and its `recoveredOn` event (ioredis
 * `ready`, pg `connect`) to its recovery.
 */
export function watchOutages(source: Watched, outages: OutageLog, recoveredOn?: string): void {
  source.on('error', (err) => outages.error(err));
  if (recoveredOn) (source as unknown as { on(e: string, l: () => void): unknown }).on(recoveredOn, () => outages.recovered());
}
