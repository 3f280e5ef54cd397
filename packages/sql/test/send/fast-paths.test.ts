// The shortcuts sp_send_dbmail takes for the usual call (bench/README.md, issue 17) decide exactly as the
// full checks they skip: a plain address (dbmail.is_plain_address) is one that address_problem accepts and
// parse_addresses records as given; the usual arguments that queue_mail lets past check_send_arguments
// are ones check_send_arguments accepts (random inputs near the edges of both). The usual call (no
// profile named, the public default, one plain address) goes to send_usual_mail instead of queue_mail:
// it stores what queue_mail stores, no rule queue_mail applies is skipped with it, and what it cannot
// take (or what anyone passes it directly) goes to queue_mail, refused as queue_mail refuses it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, withSettings } from "../../../../test/support/mail.js";
import { addSendingProfile, type MailItem, message, useSendDatabase } from "../support/send.js";

const t = useSendDatabase();

/** Random strings over `alphabet`, of length 1 to `max`. */
function randomStrings(count: number, alphabet: string, max: number): string[] {
  return Array.from({ length: count }, () => {
    const length = 1 + Math.floor(Math.random() * max);
    return Array.from({ length }, () => alphabet[Math.floor(Math.random() * alphabet.length)]).join("");
  });
}

describe("plain addresses", () => {
  it("are a subset of what address_problem accepts, recorded as parse_addresses records them", async () => {
    // Mostly letters, so that many are plain; dots, hyphens and specials where they may or may not be.
    const parts = "abcdefXYZ0189abcdef.-_+!#'`~{}";
    const edges = [
      "a@b",
      "a@b.c",
      "a.b@c-d.e",
      "a..b@c.d",
      ".a@b.c",
      "a.@b.c",
      "a@-b.c",
      "a@b-.c",
      "a@b..c",
      "a@b.c.",
      `${"a".repeat(64)}@b.c`,
      `${"a".repeat(65)}@b.c`,
      `a@${"b".repeat(63)}.c`,
      `a@${"b".repeat(64)}.c`,
      `${"a".repeat(60)}@${"b.".repeat(95)}c`,
      "a b@c.d",
      "a@b.c ",
      '"a"@b.c',
      "a@[1.2.3.4]",
      "a@b@c.d",
      "ä@b.c",
    ];
    const addresses = [
      ...edges,
      ...randomStrings(300, parts, 12).flatMap((local) =>
        randomStrings(1, parts, 20).map((domain) => `${local}@${domain}`),
      ),
    ];
    const { rows } = await t.db.query<{ a: string; plain: boolean; problem: string | null; parsed: unknown }>(
      `SELECT a, dbmail.is_plain_address(a) AS plain, dbmail.address_problem(a) AS problem,
              CASE WHEN dbmail.address_problem(a) IS NULL THEN dbmail.parse_addresses('recipients', a, 0, 0, false) END AS parsed
       FROM unnest($1::text[]) a`,
      [addresses],
    );
    const plain = rows.filter((r) => r.plain);
    expect(plain.length).toBeGreaterThan(20);
    for (const r of plain) {
      expect({ a: r.a, problem: r.problem }).toEqual({ a: r.a, problem: null });
      expect(r.parsed).toEqual([{ name: null, address: r.a }]);
    }
  });

  it("sp_send_dbmail records the envelope of a plain address as of any other", async () => {
    const plain = await t.sendAndRead(message({ recipients: "ann@x.org" }));
    const spaced = await t.sendAndRead(message({ recipients: " ann@x.org ; " }));
    expect(plain.envelope).toEqual(spaced.envelope);
    expect(plain.envelope).toEqual({ to: [{ name: null, address: "ann@x.org" }], cc: [], bcc: [] });
  });
});

describe("the usual arguments", () => {
  it("are refused exactly as check_send_arguments refuses them, with every default and odd value", async () => {
    const variants: Record<string, unknown>[] = [
      { importance: "low" },
      { importance: " High " },
      { importance: "urgent" },
      { importance: null },
      { sensitivity: "private" },
      { sensitivity: "secret" },
      { body_format: "html" },
      { body_format: "rtf" },
      { body_format: null },
      { query_result_width: 9 },
      { query_result_width: 32768 },
      { query_result_separator: "" },
      { query_result_separator: ";;" },
      { query_result_format: "xml" },
      { query_result_header: null },
      { exclude_query_output: null },
      { append_query_error: null },
      { query_no_truncate: null, query_result_no_padding: false },
      { query_no_truncate: true, query_result_no_padding: true },
      { attach_query_result_as_file: true },
      { attach_query_result_as_file: null },
      { subject: "a\nb" },
      { subject: "x".repeat(999) },
      { subject: "x".repeat(998) },
      { subject: null },
      { subject: null, body: "" },
      { subject: "", body: "" },
      { execute_query_database: "elsewhere" },
      { idempotency_key: " " },
    ];
    for (const v of variants) {
      const args = message(v);
      // The full check alone, as the owner: what it says of these arguments.
      const full = await t.db
        .query(
          `SELECT dbmail.check_send_arguments($1, $2, COALESCE($3, 'TEXT'), $4, $5, NULL, $6, $7, $8, $9, $10, $11,
             $12, $13, $14, NULL, NULL, NULL, $15, $16)`,
          [
            args.subject ?? null,
            args.body ?? null,
            "body_format" in args ? args.body_format : "TEXT",
            "importance" in args ? args.importance : "NORMAL",
            "sensitivity" in args ? args.sensitivity : "NORMAL",
            args.execute_query_database ?? null,
            "attach_query_result_as_file" in args ? args.attach_query_result_as_file : false,
            "query_result_header" in args ? args.query_result_header : true,
            "query_result_width" in args ? args.query_result_width : 256,
            "query_result_separator" in args ? args.query_result_separator : " ",
            "exclude_query_output" in args ? args.exclude_query_output : false,
            "append_query_error" in args ? args.append_query_error : false,
            "query_no_truncate" in args ? args.query_no_truncate : false,
            "query_result_no_padding" in args ? args.query_result_no_padding : false,
            args.idempotency_key ?? null,
            "query_result_format" in args ? args.query_result_format : "TEXT",
          ],
        )
        .then(
          () => "accepted",
          (error: Error) => error.message,
        );
      const sent = await t.send(args).then(
        () => "accepted",
        (error: Error) => error.message,
      );
      expect({ v, sent }).toEqual({ v, sent: full });
    }
  });
});

describe("the usual call", () => {
  let publicDefault: number;
  beforeAll(async () => {
    publicDefault = await addSendingProfile(t.db, "PublicDefault", "main_acct", "public", true);
  });
  afterAll(async () => {
    await call(t.db, "sysmail_delete_profile_sp", { profile_name: "PublicDefault" });
  });
  const usual = { profile_name: undefined, recipients: "ann@x.org", subject: "Hello", body: "Body" };
  /** The item as stored, without what differs from one call to the next. */
  const stored = async (args: Record<string, unknown>) => {
    const { mailitem_id, send_request_date, next_attempt_at, last_mod_date, ...rest } = (await t.sendAndRead(
      message(args),
    )) as MailItem & { last_mod_date: Date };
    return rest;
  };

  it("stores what the full path stores for the same message", async () => {
    const fast = await stored(usual);
    expect(fast.profile_id).toBe(publicDefault);
    expect(fast.envelope).toEqual({ to: [{ name: null, address: "ann@x.org" }], cc: [], bcc: [] });
    // Each of these takes the full path (a profile named, an empty list to parse, arguments to normalise,
    // a sender address to check) and means the same message.
    for (const detour of [
      { profile_name: "PublicDefault" },
      { copy_recipients: "" },
      { blind_copy_recipients: " " },
      { importance: " normal ", body_format: "text", sensitivity: "Normal" },
      { query_result_format: "text" },
    ]) {
      expect({ detour, item: await stored({ ...usual, ...detour }) }).toEqual({ detour, item: fast });
    }
    // The other importances and HTML, and the query options a script may set without a query.
    const options = {
      ...usual,
      importance: "HIGH",
      body_format: "HTML",
      exclude_query_output: true,
      append_query_error: true,
    };
    const fastOptions = await stored(options);
    expect(fastOptions).toMatchObject({
      importance: "HIGH",
      body_format: "HTML",
      exclude_query_output: true,
    });
    expect(await stored({ ...options, profile_name: "PublicDefault" })).toEqual(fastOptions);
    // Without a subject, the default one; with send_at, the same path.
    expect((await stored({ ...usual, subject: undefined })).subject).toBe("PostgreSQL Message");
    const at = new Date(Date.now() + 3_600_000);
    const later = await t.sendAndRead(message({ ...usual, send_at: at }));
    expect([later.send_at, later.next_attempt_at]).toEqual([at, at]);
  });

  it("keeps every argument that takes a call off it, as the full path does", async () => {
    const outcome = (args: Record<string, unknown>) =>
      stored(args).then(
        ({ profile_id, ...item }) => item,
        (error: Error) => error.message,
      );
    const at = new Date(Date.now() + 3_600_000);
    for (const variant of [
      { copy_recipients: "bob@x.org" },
      { blind_copy_recipients: "bob@x.org" },
      { from_address: "me@x.org" },
      { reply_to: "me@x.org" },
      { headers: { "X-Tag": "v" } },
      { send_at: at },
      { sensitivity: "PERSONAL" },
      { query_result_format: "CSV" },
      { query_result_width: 300 },
      { query_result_separator: "," },
      { query_result_header: false },
      { query_no_truncate: true },
      { query_result_no_padding: true },
      { attach_query_result_as_file: true },
      { execute_query_database: "elsewhere" },
      { file_attachments: "/tmp/x" },
      { attachments: [{ filename: "a.txt", content: Buffer.from("a") }] },
    ]) {
      // Any other profile than the public default takes the full path (profile_id aside, the same item).
      const full = await outcome({ ...usual, ...variant, profile_name: "Main" });
      expect({ variant, item: await outcome({ ...usual, ...variant }) }).toEqual({ variant, item: full });
    }
  });

  it("treats subjects and addresses near the edges of its own checks as the full path does", async () => {
    const long = (n: number) => `${"a".repeat(n - "@x.org".length)}@x.org`;
    for (const variant of [
      { subject: "a\tb" },
      { subject: "a\nb" },
      { subject: "a\u007fb" },
      { subject: "" },
      { subject: "ü".repeat(499) },
      { subject: "ü".repeat(500) },
      { subject: "x".repeat(998) },
      { subject: "x".repeat(999) },
      { recipients: long(63) },
      { recipients: long(64) },
      { recipients: `${"a".repeat(65)}@x.org` },
      { recipients: `a@${"b".repeat(64)}.org` },
      { recipients: "Ann <ann@x.org>" },
      { recipients: "ann@x.org;bob@x.org" },
      { recipients: " ann@x.org" },
      { recipients: "ann@x..org" },
      { recipients: "ann" },
      { recipients: "" },
    ]) {
      const outcome = (args: Record<string, unknown>) =>
        stored(args).then(
          (item) => item,
          (error: Error) => error.message,
        );
      const full = await outcome({ ...usual, ...variant, profile_name: "PublicDefault" });
      expect({ variant, item: await outcome({ ...usual, ...variant }) }).toEqual({ variant, item: full });
    }
  });

  it("keeps MaxMailsPerUserPerDay", async () => {
    await t.db.query("DELETE FROM dbmail.mailitems");
    await t.db.query("DELETE FROM dbmail.daily_mail_counts");
    await withSettings(t.db, { MaxMailsPerUserPerDay: "1" }, async () => {
      await t.send(message(usual));
      expect((await t.refused(message(usual))).code).toBe("54000");
    });
  });

  it("keeps MaxMailSize", async () => {
    // Subject, recipients and body: 5 + 9 + 4 bytes.
    await withSettings(t.db, { MaxMailSize: "18" }, () => t.send(message(usual)));
    await withSettings(t.db, { MaxMailSize: "17" }, async () => {
      expect((await t.refused(message(usual))).code).toBe("54000");
    });
  });

  it("keeps a role's own default profile", async () => {
    const own = await addSendingProfile(t.db, "AliceDefault", "main_acct", t.aliceRole.name, true);
    try {
      expect((await t.sendAndRead(message(usual))).profile_id).toBe(own);
    } finally {
      await call(t.db, "sysmail_delete_profile_sp", { profile_name: "AliceDefault" });
    }
    expect((await t.sendAndRead(message(usual))).profile_id).toBe(publicDefault);
  });

  it("refuses what sp_send_dbmail would refuse when its entry point is called directly", async () => {
    // send_usual_as_caller takes what sp_send_dbmail sends it, but any dbmail_user may call it.
    const direct = (bodyFormat: string | null, importance: string | null, exclude: boolean | null) =>
      t.alice
        .query("SELECT dbmail.send_usual_as_caller('ann@x.org', 'Hello', 'Body', $1, $2, $3, false)", [
          bodyFormat,
          importance,
          exclude,
        ])
        .then(
          () => "accepted",
          (error: Error) => error.message,
        );
    for (const [bodyFormat, importance, exclude] of [
      ["RTF", "NORMAL", false],
      ["TEXT", "URGENT", false],
      [null, "NORMAL", false],
      ["TEXT", null, false],
      ["TEXT", "NORMAL", null],
    ] as const) {
      const viaEntryPoint = await t
        .send(message({ ...usual, body_format: bodyFormat, importance, exclude_query_output: exclude }))
        .then(
          () => "accepted",
          (error: Error) => error.message,
        );
      expect({
        bodyFormat,
        importance,
        exclude,
        error: await direct(bodyFormat, importance, exclude),
      }).toEqual({
        bodyFormat,
        importance,
        exclude,
        error: viaEntryPoint,
      });
    }
    expect(await direct("RTF", "NORMAL", false)).toMatch(/^body_format: "RTF": /);
    // No body_format is TEXT, as for sp_send_dbmail.
    expect(await direct(null, "NORMAL", false)).toBe("accepted");
  });

  it("keeps refusing a dbmail group role", async () => {
    await t.alice.query("SET ROLE dbmail_user");
    try {
      expect((await t.refused(message(usual))).code).toBe("42501");
    } finally {
      await t.alice.query("RESET ROLE");
    }
  });
});
