// OutcomeRecorder alone, with a write function of the test's own standing in for record_outcomes: how
// batches form, and that one outcome the database refuses holds back none of the others.
import { describe, expect, it } from "vitest";
import type { Outcome } from "../src/rows.js";
import { OutcomeRecorder, type WriteOutcomes } from "../src/sender/outcomes.js";
import type { PendingOutcome } from "../src/sender/queries.js";

const sent = (smtpResponse: string): Outcome => ({
  status: "sent",
  accountId: 1,
  smtpResponse,
  accountErrors: [],
});

/** A stand-in for the database: refuses any batch holding an outcome whose response contains "BAD". */
function database(refusal: Error & { code?: string }) {
  const batches: PendingOutcome[][] = [];
  const write: WriteOutcomes = async (batch) => {
    batches.push(batch);
    if (batch.some((o) => o.outcome.smtpResponse?.includes("BAD"))) throw refusal;
    return new Map(batch.map((o) => [o.mailitemId, o.outcome.status]));
  };
  return { batches, write };
}

function recorder(write: WriteOutcomes, refused: string[] = []) {
  return new OutcomeRecorder(write, {
    maxBatch: 100,
    delayMs: 5,
    giveUpAfterMs: 60_000,
    onRefused: (id) => refused.push(id),
  });
}

describe("OutcomeRecorder", () => {
  it("writes outcomes that arrive together in one batch", async () => {
    const db = database(new Error("unused"));
    const outcomes = recorder(db.write);
    const statuses = await Promise.all(["1", "2", "3"].map((id) => outcomes.record(id, sent("250 OK"))));
    expect(statuses).toEqual(["sent", "sent", "sent"]);
    expect(db.batches.map((b) => b.map((o) => o.mailitemId))).toEqual([["1", "2", "3"]]);
  });

  it("records the others, and the refused one without its text, when the database refuses one outcome", async () => {
    const db = database(Object.assign(new Error("unsupported Unicode escape sequence"), { code: "22P05" }));
    const refused: string[] = [];
    const outcomes = recorder(db.write, refused);
    const statuses = await Promise.all([
      outcomes.record("1", sent("250 OK")),
      outcomes.record("2", sent("250 BAD")),
      outcomes.record("3", sent("250 OK")),
    ]);
    expect(statuses).toEqual(["sent", "sent", "sent"]);
    expect(refused).toEqual(["2"]);
    const written = db.batches.slice(1).flat();
    expect(written.map((o) => o.mailitemId)).toEqual(["1", "2", "2", "3"]);
    const kept = written.filter((o) => o.mailitemId === "2").at(-1)?.outcome;
    expect(kept).toMatchObject({ status: "sent", accountId: 1, accountErrors: [] });
    expect(kept?.smtpResponse).toBe(
      "(not stored: the database refused this outcome's text: unsupported Unicode escape sequence)",
    );
  });

  it("retries a batch whole while the database is away, and gives nothing up", async () => {
    let down = 2;
    const batches: string[][] = [];
    const outcomes = recorder(async (batch) => {
      batches.push(batch.map((o) => o.mailitemId));
      if (down-- > 0) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      return new Map(batch.map((o) => [o.mailitemId, "sent"]));
    });
    const statuses = await Promise.all(["1", "2"].map((id) => outcomes.record(id, sent("250 OK"))));
    expect(statuses).toEqual(["sent", "sent"]);
    expect(batches).toEqual([
      ["1", "2"],
      ["1", "2"],
      ["1", "2"],
    ]);
  });
});
