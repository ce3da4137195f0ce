/**
 * The project's layering, checked by `npm run lint`. Dependencies point
 * down, never in a circle; type-only imports count (a type cycle is still a
 * circle in the design).
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Dependencies point down, never in a circle.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'workers-below-http-and-admin',
      severity: 'error',
      comment: 'src/workers/ runs jobs: it never imports the HTTP layer (src/server/) or the admin operations (src/admin/).',
      from: { path: '^src/workers/' },
      to: { path: '^src/(server|admin)/' },
    },
    {
      name: 'queues-below-workers',
      severity: 'error',
      comment: 'The queue contract (src/queues/) is shared by producers and workers; it depends on neither.',
      from: { path: '^src/queues/' },
      to: { path: '^src/(workers|server|admin|cli)/|^src/deps\\.ts$' },
    },
    {
      name: 'product-not-on-dev-code',
      severity: 'error',
      comment: 'Nothing under src/ imports tests, benchmarks, scripts or the dev stack.',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts|dev)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
