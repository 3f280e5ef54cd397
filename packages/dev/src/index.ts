// @pg-dbmail/dev: what `dbmail dev` runs. The dbmail CLI of @pg-dbmail/sender loads this package by name
// when `dbmail dev` runs, and defines the contract (DevModule), checked here since the CLI cannot refer
// to this package. The local PostgreSQL is also exported, as @pg-dbmail/dev/local-postgres, for the
// repository's tests and benchmarks.
import type { DevModule } from "@pg-dbmail/sender";
import { runDev } from "./dev.js";

export { runDev };

({ runDev }) satisfies DevModule;
