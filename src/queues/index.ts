/**
 * The queue contract: queue names, job schemas, the factories and the
 * enqueue helpers. Producers (the api, admin operations, the composition
 * root) and consumers (src/workers/) both depend on it; it depends on
 * nothing above the database layer.
 */
export * from './backfill.js';
export * from './connect.js';
export * from './events.js';
export * from './intake.js';
export * from './maintenance.js';
export * from './refresh.js';
