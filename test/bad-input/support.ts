// What the bad-input catalogue's case modules share: the shape of one bad call, and how to write the
// values its message shows.

/**
 * One bad call to a public dbmail function, run against the catalogue's fixture (a fresh database):
 * accounts main 1, backup 2; profiles p 1 (the public default), private 2 (granted to nobody);
 * operators ops 1, off 2 (disabled), noemail 3; one waiting mail of profile private; mail stopped.
 */
export interface BadCall {
  name: string;
  /** The whole statement, with named parameters. */
  call: string;
  role: "user" | "admin";
  sqlstate: string;
  /** The parameter the message starts with; null for PostgreSQL's own errors, which have no such format. */
  parameter: string | null;
  /** The value the message shows (unquoted here; null: shown as NULL). For PostgreSQL's own errors: a part of its message. */
  value: string | null;
}

export const long = (ch: string, n: number) => ch.repeat(n);
/** What show_value prints for a value longer than 200 characters. */
export const cut = (value: string) => `${value.slice(0, 200)}…`;

/** The arguments of a call that is fine but for the one under test. */
export const sendArgs = "recipients => 'to@example.com', body => 'b'";
