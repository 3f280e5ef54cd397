// log_event (SPEC.md sections 6 and 7): the sender's events, kept or dropped by LoggingLevel, and bad
// event types and descriptions refused.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { errorOf } from "../../../../test/support/database.js";
import { configure, first } from "../../../../test/support/mail.js";
import {
  A,
  claim,
  db,
  events,
  makeDue,
  recordOutcome,
  s1,
  send,
  senderRole,
  useSenderProtocol,
} from "../support/sender-protocol.js";

useSenderProtocol();

describe("log_event", () => {
  const logEvent = (client: pg.Client, type: string | null, description: string | null) =>
    client
      .query<{ id: string | null }>("SELECT dbmail.log_event($1, $2, NULL, NULL, 11, $3) AS id", [
        type,
        description,
        A,
      ])
      .then((r) => first(r.rows).id);

  it("keeps warnings and information but not success at LoggingLevel 2", async () => {
    expect(await logEvent(s1, "information", "info")).not.toBeNull();
    expect(await logEvent(s1, "warning", "warn")).not.toBeNull();
    expect(await logEvent(s1, "error", "err")).not.toBeNull();
    expect(await logEvent(s1, "success", "ok")).toBeNull();
    const logged = await events();
    expect(logged.map((e) => e.event_type)).toEqual(["information", "warning", "error"]);
    expect(logged[0]).toMatchObject({ process_id: 11, sender_id: A, last_mod_user: senderRole });
  });

  it("keeps only errors at LoggingLevel 1", async () => {
    await configure(db, "LoggingLevel", "1");
    expect(await logEvent(s1, "warning", "warn")).toBeNull();
    expect(await logEvent(s1, "information", "info")).toBeNull();
    expect(await logEvent(s1, "success", "ok")).toBeNull();
    expect(await logEvent(s1, "error", "err")).not.toBeNull();
    expect((await events()).map((e) => [e.event_type, e.description])).toEqual([["error", "err"]]);
  });

  it("keeps every type at LoggingLevel 3", async () => {
    await configure(db, "LoggingLevel", "3");
    for (const type of ["success", "information", "warning", "error"]) {
      expect(await logEvent(s1, type, type)).not.toBeNull();
    }
    expect(await events()).toHaveLength(4);
  });

  it("drops the retrying warning at LoggingLevel 1 but keeps the final error", async () => {
    await configure(db, "LoggingLevel", "1");
    await configure(db, "AccountRetryAttempts", "1");
    const id = await send();
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "one" });
    await makeDue(id);
    await claim(s1, A);
    await recordOutcome(s1, id, A, "retrying", { error: "two" });
    expect((await events(id)).map((e) => e.event_type)).toEqual(["error"]);
  });

  it.each(["fatal", "Error", null])("refuses event_type %j with 22023", async (type) => {
    const error = await errorOf(logEvent(s1, type, "x"));
    expect(error.code).toBe("22023");
    expect(error.message).toMatch(/^event_type: /);
    expect(await events()).toEqual([]);
  });

  it("refuses an empty description with 22004", async () => {
    const error = await errorOf(logEvent(s1, "error", ""));
    expect(error.code).toBe("22004");
    expect(error.message).toMatch(/^description: /);
  });
});
