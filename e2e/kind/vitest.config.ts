import { defineConfig } from 'vitest/config';

// Only the kind suite; `npm run e2e:kind` runs it after preparing the cluster.
export default defineConfig({
  test: {
    include: ['e2e/kind/kind.suite.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
