import { execFileSync } from "node:child_process";
import { accessSync, constants, copyFileSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { bundledExtensionDir, EXTENSION_NAME } from "@pg-dbmail/sql";
import { CliError, ExitCode } from "../exit-codes.js";

export const extensionHelp = `Usage: dbmail extension install [--pg-config PATH]

Installs the PostgreSQL extension ${EXTENSION_NAME} (its control file and scripts, made from the same
migrations as \`dbmail migrate\` applies) into the extension directory of the PostgreSQL that pg_config
describes: \`pg_config --sharedir\`/extension. Run it on the database server, as a user that may write
there (usually root). Then a superuser runs, in each database:

  CREATE EXTENSION ${EXTENSION_NAME};              -- a new install
  ALTER EXTENSION ${EXTENSION_NAME} UPDATE;        -- after installing a newer pg-dbmail's files

Options:
  --pg-config PATH   the pg_config of the PostgreSQL to install into (default: pg_config on PATH)
  -h, --help         show this help
`;

/** The extension directory pg_config names, or a refusal that says why there is none. */
function extensionDirOf(pgConfig: string): string {
  let sharedir: string;
  try {
    sharedir = execFileSync(pgConfig, ["--sharedir"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
  } catch (error) {
    const { code, stderr } = error as { code?: string; stderr?: string };
    const why =
      code === "ENOENT"
        ? "not found (install PostgreSQL's server development package, or name it with --pg-config PATH)"
        : `failed: ${(stderr ?? (error as Error).message).trim()}`;
    throw new CliError(`--pg-config: "${pgConfig}": ${why}`, ExitCode.extensionInstallFailed, {
      cause: error,
    });
  }
  const dir = join(sharedir, "extension");
  const where = `${dir} (pg_config --sharedir of "${pgConfig}", /extension)`;
  let problem: string | undefined;
  try {
    if (!statSync(dir).isDirectory()) problem = "is not a directory; is that PostgreSQL's pg_config?";
  } catch (error) {
    problem = `does not exist (${(error as Error).message}); is that PostgreSQL's pg_config?`;
  }
  if (problem === undefined) {
    try {
      accessSync(dir, constants.W_OK);
    } catch (error) {
      problem = `cannot be written by this user (${(error as Error).message}); run as a user that may, usually root (sudo)`;
    }
  }
  if (problem !== undefined) throw new CliError(`${where}: ${problem}`, ExitCode.extensionInstallFailed);
  return dir;
}

export async function runExtensionInstall(options: { pgConfig?: string }): Promise<void> {
  const pgConfig = options.pgConfig ?? "pg_config";
  const dir = extensionDirOf(pgConfig);
  const files = readdirSync(bundledExtensionDir).filter(
    (file) =>
      file === `${EXTENSION_NAME}.control` ||
      (file.startsWith(`${EXTENSION_NAME}--`) && file.endsWith(".sql")),
  );
  if (files.length === 0) {
    throw new CliError(
      `${bundledExtensionDir}: no extension files (the @pg-dbmail/sql build writes them)`,
      ExitCode.extensionInstallFailed,
    );
  }
  for (const file of files) {
    try {
      copyFileSync(join(bundledExtensionDir, file), join(dir, file));
    } catch (error) {
      throw new CliError(
        `${join(dir, file)}: cannot be written (${(error as Error).message})`,
        ExitCode.extensionInstallFailed,
        {
          cause: error,
        },
      );
    }
  }
  const control = readFileSync(join(bundledExtensionDir, `${EXTENSION_NAME}.control`), "utf8");
  const version = /^default_version = '([^']+)'/m.exec(control)?.[1];
  console.log(`installed ${EXTENSION_NAME} ${version} into ${dir}: ${files.sort().join(", ")}`);
  console.log(
    `next, as a superuser in each database: CREATE EXTENSION ${EXTENSION_NAME}; (or ALTER EXTENSION ${EXTENSION_NAME} UPDATE;)`,
  );
}
