// Header injection through the parameters and paths the send tests do not cover:
// query_attachment_filename, display names in copy lists, NUL bytes, and a direct call to queue_mail
// with line breaks in any header-bound value (SECURITY.md §3.7). Every refused attempt leaves schema
// dbmail unchanged.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestDatabase } from "../../../../test/support/database.js";
import { type Args, first, type Queryable, refusedUnchanged, send } from "../../../../test/support/mail.js";
import { queueMailDirectly, setUpBoundaries } from "../support/boundaries.js";

let db: TestDatabase;
let aliceClient: pg.Client;

beforeAll(async () => {
  ({ db, aliceClient } = await setUpBoundaries());
});

afterAll(async () => {
  await db?.drop();
});

const sendAs = (client: Queryable, args: Args = {}) =>
  send(client, { recipients: "to@example.com", subject: "s", ...args });

describe("header injection through the parameters not covered elsewhere", () => {
  it.each([
    ["CRLF", "report\r\nBcc: evil@attacker.example.csv"],
    ["LF", "report\n.csv"],
    ["CR", "report\r.csv"],
    ["another control character", "report\u0007.csv"],
  ])("refuses %s in query_attachment_filename, nothing queued", async (_label, name) => {
    const error = await refusedUnchanged(db, () =>
      sendAs(aliceClient, {
        query: "SELECT 1 AS one",
        attach_query_result_as_file: true,
        query_attachment_filename: name,
      }),
    );
    expect(error.code, error.message).toBe("22023");
    expect(error.message).toMatch(/^query_attachment_filename: /);
    expect(error.message).not.toMatch(/[\r\n]/);
  });

  it.each(["copy_recipients", "blind_copy_recipients"])(
    "refuses a line break inside a quoted display name in %s, nothing queued",
    async (parameter) => {
      for (const value of ['"Jane\r\nBcc: evil@attacker.example" <jane@x.org>', "Jane\rDoe <jane@x.org>"]) {
        const error = await refusedUnchanged(db, () => sendAs(aliceClient, { [parameter]: value }));
        expect(error.code, error.message).toBe("22023");
        expect(error.message.startsWith(`${parameter}: `), error.message).toBe(true);
      }
    },
  );

  it("refuses a NUL byte in the subject (PostgreSQL refuses NUL in text), nothing queued", async () => {
    const error = await refusedUnchanged(db, () =>
      sendAs(aliceClient, { subject: "Hi\u0000Bcc: evil@attacker.example" }),
    );
    expect(["22021", "22P05", "22023"], `${error.code} ${error.message}`).toContain(error.code);
  });

  it.each([
    ["subject", { subject: "Hi\r\nBcc: evil@attacker.example" }],
    ["from_address", { from_address: "ops@x.org\r\nBcc: evil@attacker.example" }],
    ["reply_to", { reply_to: '"Help\r\nDesk" <help@x.org>' }],
    ["recipients", { recipients: '"Jane\nDoe" <jane@x.org>' }],
    ["headers (name)", { headers: JSON.stringify({ "X-A\r\nBcc": "v" }) }],
    ["headers (value)", { headers: JSON.stringify({ "X-Tag": "a\r\nBcc: evil@attacker.example" }) }],
    ["headers (an overridden From)", { headers: JSON.stringify({ From: "boss@x.org" }) }],
  ])(
    "a direct call to queue_mail (stamped by hand) refuses a line break in %s, nothing queued",
    async (_label, overrides) => {
      const error = await refusedUnchanged(db, () => queueMailDirectly(db, aliceClient, overrides));
      expect(error.code, error.message).toBe("22023");
    },
  );

  it("a line break in query_attachment_filename is refused, and a direct call to queue_mail takes no query at all", async () => {
    const error = await refusedUnchanged(db, () =>
      sendAs(aliceClient, {
        query: "SELECT 1",
        attach_query_result_as_file: true,
        query_attachment_filename: "a\r\nb.csv",
      }),
    );
    expect(error.code, error.message).toBe("22023");
    expect(error.message.startsWith("query_attachment_filename: "), error.message).toBe(true);
    // Directly, with a result of its own making: refused before the name is looked at.
    const direct = await refusedUnchanged(db, () =>
      queueMailDirectly(db, aliceClient, {
        query: "SELECT 1",
        query_result: "1",
        attach_query_result_as_file: true,
        query_attachment_filename: "a\r\nb.csv",
      }),
    );
    expect(direct.code, direct.message).toBe("42501");
    expect(direct.message.startsWith('query: "SELECT 1": '), direct.message).toBe(true);
  });

  it("a direct call to queue_mail refuses an in-memory attachment whose name or content type has a line break", async () => {
    for (const attachment of [
      "SELECT ARRAY[dbmail.attachment(E'a\\r\\nContent-Type: text/html.txt', '\\x61'::bytea)]::text AS a",
      "SELECT ARRAY[dbmail.attachment('a.txt', '\\x61'::bytea, E'text/plain\\r\\nX-Evil: 1')]::text AS a",
    ]) {
      const value = first((await db.query<{ a: string }>(attachment)).rows).a;
      const error = await refusedUnchanged(db, () =>
        queueMailDirectly(db, aliceClient, { attachments: value }),
      );
      expect(error.code, error.message).toBe("22023");
    }
  });
});
