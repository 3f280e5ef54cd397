// Where `dbmail start` takes its options from (SPEC.md sections 7 and 8): a flag over the environment
// over the config file over the default, seen through the sender id it registers; and the config file's
// list of databases, which DATABASE_URL may not be given with.
import { describe, expect, it } from "vitest";
import { db, type Env, launch, liveSender, run, setUpCliTests, stop, writeConfig } from "../support/cli.js";
import { unique } from "../support/mail.js";

setUpCliTests();

describe("dbmail start: flag > environment > config file > default", () => {
  async function senderIdOf(args: string[], env: Env, ids: string[]): Promise<string> {
    const proc = launch(["start", ...args], env);
    const id = await liveSender(db, ids).catch(async (error: Error) => {
      await stop(proc);
      throw new Error(`${error.message}\nstdout: ${proc.stdout()}\nstderr: ${proc.stderr()}`);
    });
    const result = await stop(proc, "SIGTERM");
    expect(result.code, result.stderr).toBe(0);
    const { rows } = await db.query("SELECT stopped_at FROM dbmail.senders WHERE sender_id = $1", [id]);
    expect(rows[0]?.stopped_at, "the sender marks itself stopped").not.toBeNull();
    return id;
  }

  function ids() {
    return { file: unique("from-file"), env: unique("from-env"), flag: unique("from-flag") };
  }

  it("only the config file: the file's value", async () => {
    const id = ids();
    const config = writeConfig({ databases: [{ url: db.url }], senderId: id.file });
    expect(await senderIdOf(["--config", config], {}, Object.values(id))).toBe(id.file);
  });

  it("environment over config file", async () => {
    const id = ids();
    const config = writeConfig({ databases: [{ url: db.url }], senderId: id.file });
    expect(await senderIdOf(["--config", config], { DBMAIL_SENDER_ID: id.env }, Object.values(id))).toBe(
      id.env,
    );
  });

  it("flag over environment over config file", async () => {
    const id = ids();
    const config = writeConfig({ databases: [{ url: db.url }], senderId: id.file });
    expect(
      await senderIdOf(
        ["--config", config, "--sender-id", id.flag],
        { DBMAIL_SENDER_ID: id.env },
        Object.values(id),
      ),
    ).toBe(id.flag);
  });

  it("an environment value over a bad file value", async () => {
    const id = ids();
    const config = writeConfig({ senderId: id.file, batchSize: 0 });
    expect(
      await senderIdOf(
        ["--config", config],
        { DATABASE_URL: db.url, DBMAIL_SENDER_ID: id.env, DBMAIL_BATCH_SIZE: "5" },
        Object.values(id),
      ),
    ).toBe(id.env);
  });

  it("a database URL together with a config file that lists databases exits 2 naming both", async () => {
    const config = writeConfig({ databases: [{ name: "one", url: db.url }] });
    const fromEnv = await run(["start", "--config", config], { DATABASE_URL: db.url });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toBe(
      `dbmail: DATABASE_URL and the "databases" of ${config}: give one or the other ` +
        "(DATABASE_URL serves one database; the config file's list serves several)\n",
    );
    const fromFlag = await run(["start", "--config", config, "--database-url", db.url]);
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr).toContain(`--database-url and the "databases" of ${config}`);
  });

  it("a config file's databases must be a list of distinct databases with URLs", async () => {
    const cases: [unknown, string][] = [
      [[], "databases: must be a non-empty list"],
      [[{ name: "a" }], 'databases[0]: needs a "url"'],
      [[{ name: "a", url: "mysql://x/y" }], "databases[0].url"],
      [
        [
          { name: "a", url: db.url },
          { name: "a", url: `${db.url}_other` },
        ],
        'databases[1]: the name "a" as databases[0]',
      ],
      [
        [
          { name: "a", url: db.url },
          { name: "b", url: db.url },
        ],
        "databases[1]: the same URL as databases[0]",
      ],
    ];
    for (const [databases, message] of cases) {
      const config = writeConfig({ databases });
      const result = await run(["start", "--config", config]);
      expect(result.code, message).toBe(2);
      expect(result.stderr, message).toContain(`${config}: ${message}`);
    }
  });
});
