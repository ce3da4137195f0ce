/**
 * `npm run sim`: the Oura simulator as a standalone server. Settings come from
 * the environment (see ./config.ts); SIGTERM/SIGINT close it gracefully.
 */
import { readSimConfig, type SimConfig } from './config.js';
import { startSimulator } from './index.js';

let config: SimConfig;
try {
  config = readSimConfig();
} catch (err) {
  console.error(`oura simulator: ${(err as Error).message}`);
  process.exit(1);
}

const sim = await startSimulator({
  port: config.SIM_PORT,
  host: config.SIM_HOST,
  clientId: config.OURA_CLIENT_ID,
  clientSecret: config.OURA_CLIENT_SECRET,
  appLimit: config.SIM_APP_RATE_LIMIT,
  tokenLimit: config.SIM_TOKEN_RATE_LIMIT,
  defaultHistoryDays: config.SIM_HISTORY_DAYS,
  seed: config.SIM_SEED,
  callbackRewrite: config.SIM_CALLBACK_REWRITE,
  logger: true,
});
sim.app.log.info({ url: sim.url, clientId: config.OURA_CLIENT_ID }, 'oura simulator listening');

let closing = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (closing) return;
    closing = true;
    sim.app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    sim.close().then(
      () => process.exit(0),
      (err: unknown) => {
        sim.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
