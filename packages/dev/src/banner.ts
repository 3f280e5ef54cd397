import { describeDatabaseUrl } from "@pg-dbmail/sender";
import { demoProfile } from "./demo-profile.js";

export interface Welcome {
  /** The dev database. */
  url: string;
  /** Whether dbmail dev started the PostgreSQL (its password is a fixed development one: printable). */
  ownPostgres: boolean;
  catcherPort: number;
  mailDir: string;
  /** The web console's address. */
  consoleUrl: string;
  /** The role that signs in to the console without a password (only in dbmail dev's own PostgreSQL). */
  demoRole: string | undefined;
  /** The data directory, when --data-dir named one (dev --list must be told it too). */
  dataDirOption: string | undefined;
}

/**
 * What to paste, once everything runs. The other terminal gets DATABASE_URL, so that `dbmail status`,
 * `send-test` and psql reach the dev database rather than whatever PG* variables point at. A URL the
 * user gave is never printed with its password.
 */
export function printWelcome(welcome: Welcome): void {
  const shown = welcome.ownPostgres ? welcome.url : describeDatabaseUrl(welcome.url);
  const masked = shown !== welcome.url;
  const list = `npx dbmail dev --list${welcome.dataDirOption ? ` --data-dir '${welcome.dataDirOption}'` : ""}`;
  const commands: [string, string][] = [
    ["npx dbmail status", "the queue, the live senders, the latest failures"],
    ["npx dbmail send-test --to you@example.com", `a test mail through '${demoProfile}', and its outcome`],
    [list, "the mail caught so far"],
  ];
  const width = Math.max(...commands.map(([command]) => command.length));
  const signIn = welcome.demoRole
    ? `sign in as ${welcome.demoRole}, no password needed on this machine`
    : "sign in with your PostgreSQL role";
  console.log(`
pg-dbmail is running in ${shown}

In another terminal, point the dbmail commands and psql at it:

  export DATABASE_URL='${shown}'
  psql '${shown}'
${masked ? "\n(**** stands for the password of the URL you gave, which is not printed.)\n" : ""}
then paste into psql:

  SELECT dbmail.sp_send_dbmail(recipients => 'you@example.com', subject => 'Hello from PostgreSQL', body => 'It works.');
  SELECT mailitem_id, subject, sent_status, sent_date FROM dbmail.sysmail_allitems ORDER BY mailitem_id DESC;

and, with DATABASE_URL exported as above:

${commands.map(([command, what]) => `  ${command.padEnd(width)}   # ${what}`).join("\n")}

The profile '${demoProfile}' is every user's default; it sends to the mail catcher on 127.0.0.1:${welcome.catcherPort},
which keeps each mail in ${welcome.mailDir} and announces it here.

The web console: ${welcome.consoleUrl} (${signIn})

Ctrl-C to stop.
`);
}
