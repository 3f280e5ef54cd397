// npm run test:faults [-- --long] [vitest options]: the fault suite, in its quick or long mode.
// vitest refuses options it does not know, so --long is taken here and passed on as FAULTS_LONG=1.
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const long = args.includes("--long");
const vitestArgs = args.filter((a) => a !== "--long");
const result = spawnSync(
  process.execPath,
  ["node_modules/vitest/vitest.mjs", "run", "--config", "test/faults/vitest.config.ts", ...vitestArgs],
  { stdio: "inherit", env: { ...process.env, ...(long ? { FAULTS_LONG: "1" } : {}) } },
);
process.exit(result.status ?? 1);
