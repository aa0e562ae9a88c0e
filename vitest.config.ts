import { defineConfig } from 'vitest/config'

// Mount tests start daemons and kernel mounts: run files one at a time so two suites never fight over
// /dev/fuse connections or CPU, and give every test a generous ceiling (a hung mount fails, never blocks).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
})
