export * from './core.js';
export * from './documents.generated.js';
