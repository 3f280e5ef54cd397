import { createRequire } from "node:module";

/** This package's version: printed by `dbmail --version`, reported by each sender in dbmail.senders. */
export const packageVersion = (createRequire(import.meta.url)("../package.json") as { version: string })
  .version;
