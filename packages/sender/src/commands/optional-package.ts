import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CliError, ExitCode } from "../exit-codes.js";

// `dbmail dev` and `dbmail console` are commands of this CLI whose code lives in packages that production
// installs and the container image may leave out (@pg-dbmail/dev, @pg-dbmail/console). They are loaded
// only when the command runs, by name, so this package neither depends on them nor refers to their types.

/**
 * Imports an optional package: next to this package (a project that installed both, a checkout), else
 * from the current directory's project (this CLI run by npx or installed globally, the project having
 * the package). When it is installed nowhere, throws `notInstalled`.
 */
export async function loadOptionalPackage<T>(name: string, notInstalled: CliError): Promise<T> {
  const specifiers = [
    // A specifier in a variable: TypeScript leaves it alone (no reference to the package's types).
    () => name,
    () => pathToFileURL(createRequire(join(process.cwd(), "package.json")).resolve(name)).href,
  ];
  for (const specifier of specifiers) {
    try {
      return (await import(specifier())) as T;
    } catch (error) {
      if (!isMissing(error, name)) {
        const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
        throw new CliError(`cannot load ${name}: ${reason}`, ExitCode.failure, { cause: error });
      }
    }
  }
  throw notInstalled;
}

/** Whether `error` says that the package itself is not installed (not that something it needs is missing). */
function isMissing(error: unknown, name: string): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes(`'${name}'`)
  );
}

/**
 * The optional packages throw this package's CliError; when one was loaded from another copy of this
 * package (npx, a global install), that is another class, so recognise it by its shape.
 */
export function asCliError(error: unknown): unknown {
  if (error instanceof CliError) return error;
  const { name, message, exitCode } = error as { name?: string; message?: string; exitCode?: unknown };
  if (name === "CliError" && typeof message === "string" && typeof exitCode === "number") {
    return new CliError(message, exitCode, { cause: error });
  }
  return error;
}
