import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', '.test-build/**', 'node_modules/**', 'migrations/**', '.dependency-cruiser.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'read configuration through src/config.ts' },
      ],
    },
  },
  {
    files: ['src/config.ts', 'src/sim/config.ts', 'test/**', 'scripts/**', 'bench/**', 'dev/**', 'drizzle.config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
);
