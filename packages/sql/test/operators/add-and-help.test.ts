// Adding and listing operators (docs/sql-reference.md sections 6.1 and 6.4; operators are beyond
// SPEC.md): sp_add_operator's defaults, trimming and refusals, and sp_help_operator by id or name.
import { describe, expect, it } from "vitest";
import { type Args, call, unique } from "../../../../test/support/mail.js";
import {
  addOperator,
  admin,
  adminRole,
  expectNoAddresses,
  expectRefusedWith,
  helpOperator,
  scalar,
  su,
  useOperatorDatabase,
} from "../support/configuration.js";

useOperatorDatabase("op_add_and_help");

describe("sp_add_operator and sp_help_operator", () => {
  it("add returns the new id; help shows SQL Server's defaults for what was not given", async () => {
    const { id, name } = await addOperator();
    expect(id).toBeGreaterThan(0);
    expect(await helpOperator({ operator_name: name })).toEqual({
      id,
      name,
      enabled: true,
      email_address: `${name}@example.com`,
      pager_address: null,
      weekday_pager_start_time: 90000,
      weekday_pager_end_time: 180000,
      saturday_pager_start_time: 90000,
      saturday_pager_end_time: 180000,
      sunday_pager_start_time: 90000,
      sunday_pager_end_time: 180000,
      pager_days: 0,
      netsend_address: null,
      category_name: null,
    });
  });

  it("stores every parameter, trimmed, and records the calling role", async () => {
    const name = unique("Night Shift");
    // Numbers have nothing to trim: they are stored as given.
    const pagerHours = {
      weekday_pager_start_time: 220000,
      weekday_pager_end_time: 60000,
      saturday_pager_start_time: 0,
      saturday_pager_end_time: 235959,
      sunday_pager_start_time: 123045,
      sunday_pager_end_time: 130000,
      pager_days: 65,
    };
    const id = await scalar(admin, "sp_add_operator", {
      name: `  ${name} `,
      enabled: false,
      email_address: ' night@example.com; "Doe, Jane" <jane@example.com> ',
      pager_address: " pager@example.com ",
      ...pagerHours,
      netsend_address: " NIGHTPC ",
      category_name: " Shifts ",
    });
    expect(await helpOperator({ operator_id: id })).toEqual({
      id,
      name,
      enabled: false,
      email_address: 'night@example.com; "Doe, Jane" <jane@example.com>',
      pager_address: "pager@example.com",
      ...pagerHours,
      netsend_address: "NIGHTPC",
      category_name: "Shifts",
    });
    const [row] = await su(
      "SELECT last_mod_user, last_mod_date FROM dbmail.operators WHERE operator_id = $1",
      [id],
    );
    expect(row?.last_mod_user).toBe(adminRole.name);
    expect(row?.last_mod_date).toBeInstanceOf(Date);
  });

  it("'' addresses and category are stored as NULL", async () => {
    const { id } = await addOperator({
      email_address: "",
      pager_address: " ",
      netsend_address: "",
      category_name: "",
    });
    await expectNoAddresses(id);
  });

  it("help lists every operator by name, and finds one by name in any case, by id, or by both", async () => {
    const b = await addOperator({ name: unique("zz_b") });
    const a = await addOperator({ name: unique("ZZ_a") });
    const all = await call(admin, "sp_help_operator");
    const byName = await su("SELECT name FROM dbmail.operators ORDER BY lower(name), operator_id");
    expect(all.map((r) => r.name)).toEqual(byName.map((r) => r.name));
    expect(all.map((r) => r.name)).toEqual(expect.arrayContaining([a.name, b.name]));
    expect((await helpOperator({ operator_name: ` ${a.name.toLowerCase()} ` })).id).toBe(a.id);
    expect((await helpOperator({ operator_id: b.id })).name).toBe(b.name);
    expect((await helpOperator({ operator_name: b.name, operator_id: b.id })).id).toBe(b.id);
  });

  it("help refuses an unknown operator instead of returning nothing", async () => {
    const a = await addOperator();
    await expectRefusedWith(
      () => call(admin, "sp_help_operator", { operator_name: "ghost" }),
      "42704",
      'operator_name: "ghost": no such operator',
    );
    await expectRefusedWith(
      () => call(admin, "sp_help_operator", { operator_id: 999999 }),
      "42704",
      'operator_id: "999999": no such operator',
    );
    await expectRefusedWith(
      () => call(admin, "sp_help_operator", { operator_name: a.name, operator_id: 999999 }),
      "22023",
      `operator_name: "${a.name}": is operator ${a.id}, not operator_id 999999`,
    );
  });
});

describe("sp_add_operator: bad input", () => {
  const cases: [string, Args, string, string][] = [
    ["a NULL name", { name: null }, "22004", "name: NULL: an operator needs a name"],
    ["a blank name", { name: "   " }, "22004", 'name: "   ": an operator needs a name'],
    [
      "a name with a line break",
      { name: "a\nb" },
      "22023",
      'name: "a\\nb": line breaks and control characters are not allowed here',
    ],
    ["a name of 129 characters", { name: "n".repeat(129) }, "22023", "is longer than 128 characters"],
    ["enabled NULL", { enabled: null }, "22004", "enabled: NULL: must be true or false"],
    [
      "addresses separated by a comma",
      { email_address: "a@example.com, b@example.com" },
      "22023",
      `email_address: "a@example.com, b@example.com": use ';' to separate addresses`,
    ],
    [
      "an invalid e-mail address",
      { email_address: "ok@example.com; not-an-address" },
      "22023",
      'email_address: "not-an-address": not an e-mail address (no @)',
    ],
    [
      "an e-mail address list without an address",
      { email_address: " ; " },
      "22023",
      'email_address: ";": no e-mail address given',
    ],
    [
      "an invalid pager address",
      { pager_address: "pager@" },
      "22023",
      'pager_address: "pager@": not an e-mail address (nothing after the @)',
    ],
    [
      "a time after 23:59:59",
      { weekday_pager_start_time: 240000 },
      "22023",
      'weekday_pager_start_time: "240000": must be a time of day HHMMSS, from 000000 to 235959',
    ],
    [
      "a negative time",
      { saturday_pager_end_time: -1 },
      "22023",
      'saturday_pager_end_time: "-1": must be a time of day HHMMSS, from 000000 to 235959',
    ],
    [
      "60 minutes",
      { sunday_pager_start_time: 126000 },
      "22023",
      'sunday_pager_start_time: "126000": the minutes (MM of HHMMSS) must be from 00 to 59',
    ],
    [
      "60 seconds",
      { sunday_pager_end_time: 125960 },
      "22023",
      'sunday_pager_end_time: "125960": the seconds (SS of HHMMSS) must be from 00 to 59',
    ],
    [
      "a NULL time",
      { weekday_pager_end_time: null },
      "22004",
      "weekday_pager_end_time: NULL: must be a time of day HHMMSS, from 000000 to 235959",
    ],
    [
      "pager_days above 127",
      { pager_days: 128 },
      "22023",
      'pager_days: "128": must be from 0 to 127: add up 1 Sunday, 2 Monday, 4 Tuesday, 8 Wednesday, 16 Thursday, 32 Friday, 64 Saturday',
    ],
    ["negative pager_days", { pager_days: -1 }, "22023", 'pager_days: "-1": must be from 0 to 127'],
    ["pager_days NULL", { pager_days: null }, "22004", "pager_days: NULL: must be from 0 to 127"],
    [
      "a net send address of 101 characters",
      { netsend_address: "x".repeat(101) },
      "22023",
      "is longer than 100 characters",
    ],
    [
      "a category with a line break",
      { category_name: "a\r\nb" },
      "22023",
      'category_name: "a\\r\\nb": line breaks and control characters are not allowed here',
    ],
  ];

  it.each(cases)(
    "%s is refused, naming the parameter and value, and nothing is stored",
    async (_, args, code, message) => {
      const full = { name: unique("bad"), ...args };
      await expectRefusedWith(
        () => scalar(admin, "sp_add_operator", full),
        code,
        message.includes(": ") ? new RegExp(`^${escapeRegExp(message)}`) : new RegExp(escapeRegExp(message)),
      );
    },
  );

  it("a name that exists in another case is refused (42710)", async () => {
    const { name } = await addOperator();
    await expectRefusedWith(
      () => scalar(admin, "sp_add_operator", { name: ` ${name.toUpperCase()} ` }),
      "42710",
      `name: " ${name.toUpperCase()} ": an operator with this name exists`,
    );
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
