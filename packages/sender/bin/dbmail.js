#!/usr/bin/env node
// The `dbmail` command. npm links this file when it installs the package, which in a checkout of the
// repository happens before anything is built (`npm ci`), so it is plain JavaScript: it loads the
// compiled CLI, and says what to do when that is not there yet instead of failing obscurely.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  process.stderr.write(
    "dbmail: the CLI is not built yet: run `npm run build` at the root of the pg-dbmail checkout, then try again\n",
  );
  process.exit(1);
}
await import(cli.href);
