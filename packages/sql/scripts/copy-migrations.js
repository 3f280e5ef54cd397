// The migrations live once, in the repository's sql/migrations; the published package carries a copy
// so that `@pg-dbmail/sql` works outside this repository.
import { cpSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const from = fileURLToPath(new URL("../../../sql/migrations", import.meta.url));
const to = fileURLToPath(new URL("../migrations", import.meta.url));
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
