import type { Deps } from '../deps.js';

/** A repeatable housekeeping task (see maintenance.ts). */
export interface MaintenanceTask {
  /** Job name and scheduler id. */
  name: string;
  /** How often it runs, in milliseconds. */
  everyMs: number;
  /** Delay of the first run when the schedule is first registered (default: at once); restarts keep the schedule. */
  firstRunAfterMs?: number;
  run: (deps: Deps, log: Deps['log']) => Promise<unknown>;
}
