import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: [
      'node/**/*.test.ts',
      'operator/**/*.test.ts',
      'e2e/**/*.test.ts',
      'scripts/**/*.test.ts',
      'bench/**/*.test.ts',
    ],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
