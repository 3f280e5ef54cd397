import { execFileSync, spawnSync } from "node:child_process";

/** The major version of a PostgreSQL client tool on PATH, or undefined when it is not installed. */
export function toolMajorVersion(tool: "pg_dump" | "psql"): number | undefined {
  const result = spawnSync(tool, ["--version"], { encoding: "utf8" });
  if (result.status !== 0) return undefined;
  const match = /\(PostgreSQL\) (\d+)/.exec(result.stdout);
  return match ? Number(match[1]) : undefined;
}

/**
 * Schema dbmail as `pg_dump --schema-only` prints it, minus what differs between runs or machines:
 * comments, session SETs, and the random \restrict key of newer pg_dump versions.
 */
export function dumpSchema(url: string): string {
  const raw = execFileSync("pg_dump", ["--schema-only", "--no-owner", "--schema=dbmail", url], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  return normaliseDump(raw);
}

export function normaliseDump(raw: string): string {
  const kept = raw
    .split("\n")
    .filter((line) => !line.startsWith("--"))
    .filter((line) => !/^\\(un)?restrict /.test(line))
    .filter((line) => !/^SET |^SELECT pg_catalog\.set_config\(/.test(line));
  return `${kept
    .join("\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim()}\n`;
}
