// Changing and deleting operators (docs/sql-reference.md sections 6.2 and 6.3; operators are beyond
// SPEC.md): sp_update_operator keeps what is not given, clears with '', renames and refuses bad values;
// sp_delete_operator.
import { describe, expect, it } from "vitest";
import { call, unique } from "../../../../test/support/mail.js";
import {
  addOperator,
  admin,
  adminRole,
  db,
  expectNoAddresses,
  expectRefusedWith,
  helpOperator,
  su,
  useOperatorDatabase,
} from "../support/configuration.js";

useOperatorDatabase("op_update_and_delete");

describe("sp_update_operator", () => {
  it("NULL arguments keep every stored value", async () => {
    const { id, name } = await addOperator({
      pager_address: "p@example.com",
      pager_days: 62,
      netsend_address: "PC1",
      category_name: "c",
      weekday_pager_start_time: 80000,
    });
    const before = await helpOperator({ operator_id: id });
    await call(admin, "sp_update_operator", { name });
    expect(await helpOperator({ operator_id: id })).toEqual(before);
  });

  it("'' clears email_address, pager_address, netsend_address and category_name", async () => {
    const { id, name } = await addOperator({
      pager_address: "p@example.com",
      netsend_address: "PC1",
      category_name: "c",
    });
    await call(admin, "sp_update_operator", {
      name,
      email_address: "",
      pager_address: "",
      netsend_address: " ",
      category_name: "",
    });
    await expectNoAddresses(id);
  });

  it("changes what is given and records who changed it", async () => {
    const { id, name } = await addOperator();
    await db.query(
      "UPDATE dbmail.operators SET last_mod_user = 'someone', last_mod_date = now() - interval '1 day'",
    );
    // Stored as given (nothing here needs trimming), so help_operator shows exactly these.
    const changes = {
      enabled: false,
      email_address: "new@example.com;other@example.com",
      pager_address: "pager@example.com",
      weekday_pager_start_time: 70000,
      weekday_pager_end_time: 190000,
      saturday_pager_start_time: 100000,
      saturday_pager_end_time: 140000,
      sunday_pager_start_time: 110000,
      sunday_pager_end_time: 120000,
      pager_days: 127,
      netsend_address: "PC2",
      category_name: "Team",
    };
    await call(admin, "sp_update_operator", { name: name.toUpperCase(), ...changes });
    expect(await helpOperator({ operator_id: id })).toEqual({ id, name, ...changes });
    const [row] = await su(
      "SELECT last_mod_user, last_mod_date > now() - interval '1 hour' AS recent FROM dbmail.operators WHERE operator_id = $1",
      [id],
    );
    expect(row).toEqual({ last_mod_user: adminRole.name, recent: true });
  });

  it("new_name renames (a change of case too); the old name is then unknown", async () => {
    const { id, name } = await addOperator();
    const renamed = unique("renamed");
    await call(admin, "sp_update_operator", { name, new_name: ` ${renamed} ` });
    expect((await helpOperator({ operator_id: id })).name).toBe(renamed);
    await expectRefusedWith(
      () => call(admin, "sp_help_operator", { operator_name: name }),
      "42704",
      `operator_name: "${name}": no such operator`,
    );
    await call(admin, "sp_update_operator", { name: renamed, new_name: renamed.toUpperCase() });
    expect((await helpOperator({ operator_id: id })).name).toBe(renamed.toUpperCase());
  });

  it("refuses a new name that another operator has, in any case", async () => {
    const a = await addOperator();
    const b = await addOperator();
    await expectRefusedWith(
      () => call(admin, "sp_update_operator", { name: a.name, new_name: b.name.toUpperCase() }),
      "42710",
      `new_name: "${b.name.toUpperCase()}": an operator with this name exists`,
    );
  });

  it("refuses an unknown or missing operator, a blank new name and bad values, changing nothing", async () => {
    const { name } = await addOperator();
    await expectRefusedWith(
      () => call(admin, "sp_update_operator", { name: "ghost", enabled: false }),
      "42704",
      'name: "ghost": no such operator',
    );
    await expectRefusedWith(
      () => call(admin, "sp_update_operator", { enabled: false }),
      "22004",
      "name: NULL: give the operator's name",
    );
    await expectRefusedWith(
      () => call(admin, "sp_update_operator", { name, new_name: " " }),
      "22004",
      'new_name: " ": an operator needs a name',
    );
    await expectRefusedWith(
      () =>
        call(admin, "sp_update_operator", {
          name,
          email_address: "x@example.com, y@example.com",
          enabled: false,
        }),
      "22023",
      `email_address: "x@example.com, y@example.com": use ';' to separate addresses`,
    );
    await expectRefusedWith(
      () => call(admin, "sp_update_operator", { name, pager_days: 1000 }),
      "22023",
      /^pager_days: "1000": must be from 0 to 127/,
    );
    await expectRefusedWith(
      () => call(admin, "sp_update_operator", { name, weekday_pager_end_time: 236000 }),
      "22023",
      'weekday_pager_end_time: "236000": must be a time of day HHMMSS, from 000000 to 235959',
    );
  });
});

describe("sp_delete_operator", () => {
  it("deletes by name in any case; the operator is then unknown", async () => {
    const { name } = await addOperator();
    await call(admin, "sp_delete_operator", { name: ` ${name.toUpperCase()} ` });
    await expectRefusedWith(
      () => call(admin, "sp_help_operator", { operator_name: name }),
      "42704",
      `operator_name: "${name}": no such operator`,
    );
  });

  it("refuses an unknown or missing name, changing nothing", async () => {
    await expectRefusedWith(
      () => call(admin, "sp_delete_operator", { name: "ghost" }),
      "42704",
      'name: "ghost": no such operator',
    );
    await expectRefusedWith(
      () => call(admin, "sp_delete_operator"),
      "22004",
      "name: NULL: give the operator's name",
    );
  });
});
