import { defineConfig } from "vitest/config";

// npm run test:faults -- --long (run.mjs turns it into FAULTS_LONG=1): larger counts and more kills
// (see support.ts).
const long = process.env.FAULTS_LONG === "1";

export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["test/faults/**/*.test.ts"],
    exclude: ["**/node_modules/**"],
    globalSetup: ["test/support/global-setup.ts", "test/faults/report-setup.ts"],
    env: { FAULTS_LONG: long ? "1" : "0" },
    testTimeout: long ? 1_800_000 : 120_000,
    hookTimeout: 120_000,
    // Real processes and timing: one scenario at a time, so they do not starve each other of CPU.
    pool: "forks",
    fileParallelism: false,
  },
});
