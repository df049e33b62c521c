import { defineConfig } from 'vitest/config';

// One config for every package. Tests import packages by name (`@fsw/walk`), which resolves to the built `dist`,
// so the suite exercises exactly what is published; `pnpm test` builds first.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
