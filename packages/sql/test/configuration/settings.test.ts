// Settings (SPEC.md section 4, "Settings", and section 9): sysmail_configure_sp and
// sysmail_help_configure_sp, the defaults, how values are normalised when stored, and the values refused.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { call, configure, setting } from "../../../../test/support/mail.js";
import {
  admin,
  adminRole,
  type BadCall,
  expectBadCall,
  expectRefused,
  type Row,
  su,
  useDatabase,
} from "../support/configuration.js";

useDatabase("cfg_settings");

describe("settings", () => {
  let defaults: Row[];

  beforeAll(async () => {
    defaults = await su("SELECT paramname, paramvalue, description FROM dbmail.settings");
  });

  afterEach(async () => {
    for (const row of defaults) {
      await su("UPDATE dbmail.settings SET paramvalue = $2, description = $3 WHERE paramname = $1", [
        row.paramname,
        row.paramvalue,
        row.description,
      ]);
    }
  });

  it("help_configure_sp lists the defaults of SPEC's table, by name", async () => {
    const rows = await call(admin, "sysmail_help_configure_sp");
    expect(rows.map((r) => [r.paramname, r.paramvalue])).toEqual([
      ["AccountRetryAttempts", "1"],
      ["AccountRetryDelay", "60"],
      ["AdminRoles", ""],
      ["AttachmentDirectories", ""],
      ["DatabaseMailExeMinimumLifeTime", "600"],
      ["DefaultAttachmentEncoding", "MIME"],
      ["LoggingLevel", "2"],
      ["MaxFileSize", "1000000"],
      ["MaxMailSize", "10485760"],
      ["MaxMailsPerUserPerDay", "0"],
      ["MaxRecipientsPerMail", "100"],
      ["ProhibitedExtensions", "exe,dll,vbs,js"],
      ["SenderRoles", ""],
      ["UnknownOutcomePolicy", "retry"],
    ]);
    expect(rows.every((r) => typeof r.description === "string" && r.description !== "")).toBe(true);
  });

  it("help_configure_sp finds one setting by name in any case", async () => {
    expect(await call(admin, "sysmail_help_configure_sp", { parameter_name: "maxfilesize" })).toEqual([
      { paramname: "MaxFileSize", paramvalue: "1000000", description: expect.any(String) },
    ]);
  });

  it("configure stores the value under the canonical name and records who changed it", async () => {
    await configure(admin, "accountretryattempts", " 3 ");
    expect(
      await su(
        "SELECT paramvalue, last_mod_user FROM dbmail.settings WHERE paramname = 'AccountRetryAttempts'",
      ),
    ).toEqual([{ paramvalue: "3", last_mod_user: adminRole.name }]);
    expect(await su("SELECT count(*)::int AS n FROM dbmail.settings")).toEqual([{ n: 14 }]);
  });

  it("a NULL description keeps the old one; a new one replaces it", async () => {
    const before = (await call(admin, "sysmail_help_configure_sp", { parameter_name: "MaxFileSize" }))[0]
      ?.description;
    await configure(admin, "MaxFileSize", "2000000");
    expect(await call(admin, "sysmail_help_configure_sp", { parameter_name: "MaxFileSize" })).toEqual([
      { paramname: "MaxFileSize", paramvalue: "2000000", description: before },
    ]);
    await call(admin, "sysmail_configure_sp", {
      parameter_name: "MaxFileSize",
      parameter_value: "5",
      description: "tiny",
    });
    expect(await call(admin, "sysmail_help_configure_sp", { parameter_name: "MaxFileSize" })).toEqual([
      { paramname: "MaxFileSize", paramvalue: "5", description: "tiny" },
    ]);
  });

  it.each([
    { name: "ProhibitedExtensions", given: " .EXE, Dll ", stored: "exe,dll" },
    { name: "ProhibitedExtensions", given: "", stored: "" },
    { name: "DefaultAttachmentEncoding", given: "mime", stored: "MIME" },
    { name: "AttachmentDirectories", given: " /srv/mail/ ; /var/reports ", stored: "/srv/mail;/var/reports" },
    { name: "MaxFileSize", given: "007", stored: "7" },
    { name: "MaxFileSize", given: "1073741823", stored: "1073741823" },
    { name: "LoggingLevel", given: "3", stored: "3" },
    { name: "AccountRetryAttempts", given: "0", stored: "0" },
  ])("$name $given is stored as $stored", async ({ name, given, stored }) => {
    await configure(admin, name, given);
    expect(await setting(admin, name)).toBe(stored);
  });

  it("AttachmentDirectories '/' is kept as the root (docs: a trailing / is removed, / alone stays), never silently emptied", async () => {
    await call(admin, "sysmail_configure_sp", {
      parameter_name: "AttachmentDirectories",
      parameter_value: "/",
    });
    expect(await setting(admin, "AttachmentDirectories")).toBe("/");
  });

  // biome-ignore format: a table reads best one case per line
  const cases: BadCall[] = [
    { label: "an unknown name", args: () => ({ parameter_name: "MaxFileSizes", parameter_value: "1" }), code: "42704", parameter: "parameter_name", value: "MaxFileSizes", problem: "no such setting" },
    { label: "a NULL name", args: () => ({ parameter_value: "1" }), code: "22004", parameter: "parameter_name", value: null },
    { label: "a NULL value", args: () => ({ parameter_name: "LoggingLevel" }), code: "22004", parameter: "parameter_value", value: null, problem: "LoggingLevel" },
    { label: "LoggingLevel 0", args: () => ({ parameter_name: "LoggingLevel", parameter_value: "0" }), code: "22023", parameter: "parameter_value", value: "0", problem: "LoggingLevel must be a whole number from 1 to 3" },
    { label: "LoggingLevel 4", args: () => ({ parameter_name: "LoggingLevel", parameter_value: "4" }), code: "22023", parameter: "parameter_value", value: "4", problem: "from 1 to 3" },
    { label: "MaxFileSize abc", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "abc" }), code: "22023", parameter: "parameter_value", value: "abc", problem: "MaxFileSize" },
    { label: "MaxFileSize -1", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "-1" }), code: "22023", parameter: "parameter_value", value: "-1" },
    { label: "MaxFileSize 1.5", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "1.5" }), code: "22023", parameter: "parameter_value", value: "1.5" },
    { label: "MaxFileSize ''", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "" }), code: "22023", parameter: "parameter_value", value: "" },
    { label: "MaxFileSize above 1073741823", args: () => ({ parameter_name: "MaxFileSize", parameter_value: "1073741824" }), code: "22023", parameter: "parameter_value", value: "1073741824" },
    { label: "AccountRetryAttempts 101", args: () => ({ parameter_name: "AccountRetryAttempts", parameter_value: "101" }), code: "22023", parameter: "parameter_value", value: "101" },
    { label: "DatabaseMailExeMinimumLifeTime 0", args: () => ({ parameter_name: "DatabaseMailExeMinimumLifeTime", parameter_value: "0" }), code: "22023", parameter: "parameter_value", value: "0" },
    { label: "DefaultAttachmentEncoding UUENCODE", args: () => ({ parameter_name: "DefaultAttachmentEncoding", parameter_value: "UUENCODE" }), code: "22023", parameter: "parameter_value", value: "UUENCODE", problem: "only MIME" },
    { label: "an extension with a space", args: () => ({ parameter_name: "ProhibitedExtensions", parameter_value: "exe, bad ext" }), code: "22023", parameter: "parameter_value", value: "exe, bad ext", problem: "not a file extension" },
    { label: "a relative attachment directory", args: () => ({ parameter_name: "AttachmentDirectories", parameter_value: "relative/dir" }), code: "22023", parameter: "parameter_value", value: "relative/dir", problem: "absolute" },
    { label: "an attachment directory with ..", args: () => ({ parameter_name: "AttachmentDirectories", parameter_value: "/srv/../etc" }), code: "22023", parameter: "parameter_value", value: "/srv/../etc" },
    { label: "a second attachment directory ..", args: () => ({ parameter_name: "AttachmentDirectories", parameter_value: "/srv/mail;.." }), code: "22023", parameter: "parameter_value", value: "/srv/mail;.." },
  ];

  it.each(cases)("configure refuses $label", async (bad) => {
    await expectBadCall("sysmail_configure_sp", bad);
  });

  it("help_configure_sp refuses an unknown name", async () => {
    await expectRefused(() => call(admin, "sysmail_help_configure_sp", { parameter_name: "Nope" }), {
      code: "42704",
      parameter: "parameter_name",
      value: "Nope",
    });
  });
});
