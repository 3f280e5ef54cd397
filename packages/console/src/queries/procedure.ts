import type pg from "pg";

/** Named arguments of a call: only those given are passed, so the procedure's own defaults apply. */
export type Args = Record<string, string>;

export interface CallResult<Row> {
  rows: Row[];
  /** The procedure's WARNING notices (the Microsoft 365 password warning, say), to show the person. */
  warnings: string[];
}

const identifier = /^[a-z][a-z0-9_]*$/;

/**
 * Calls `dbmail.<name>(arg => $1, ...)` as the signed-in role. The procedure and argument names are
 * the console's own constants (checked here all the same); every value is a parameter, passed as text
 * for PostgreSQL to convert to the argument's type.
 */
export async function callProcedure<Row extends object = Record<string, unknown>>(
  pool: pg.Pool,
  name: string,
  args: Args,
  set = false,
): Promise<CallResult<Row>> {
  const names = Object.keys(args);
  for (const n of [name, ...names])
    if (!identifier.test(n)) throw new Error(`not a procedure or argument name: ${n}`);
  const list = names.map((n, i) => `${n} => $${i + 1}`).join(", ");
  const sql = set ? `SELECT * FROM dbmail.${name}(${list})` : `SELECT dbmail.${name}(${list})`;
  const client = await pool.connect();
  const warnings: string[] = [];
  const onNotice = (notice: { severity?: string; message?: string }) => {
    if (notice.severity === "WARNING" && notice.message) warnings.push(notice.message);
  };
  client.on("notice", onNotice);
  try {
    const result = await client.query<Row>(sql, Object.values(args));
    return { rows: result.rows, warnings };
  } finally {
    client.off("notice", onNotice);
    client.release();
  }
}

/** The SQLSTATE of an unknown id or name (42704), which the help procedures raise. */
export function isUnknownObject(error: unknown): boolean {
  return (error as { code?: string }).code === "42704";
}

/**
 * The message of a refusal to show next to the form: any error the database reported, except a lack
 * of privilege (42501), which is not about the form and goes up to the "admins only" page.
 */
export function refusal(error: unknown): string | undefined {
  const { code, message } = error as { code?: string; message?: string };
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) && code !== "42501" ? message : undefined;
}

/** An id in a path: a positive integer that fits PostgreSQL's integer. */
export function isSmallId(value: string): boolean {
  return /^[1-9]\d{0,8}$/.test(value);
}
