// How long the sender waits before trying a database again (src/sender/backoff.ts) and which errors it
// waits out at all (src/sender/transient-errors.ts): exponential from 250 ms, capped at 30 s, with jitter,
// for a server starting up, shutting down, full or unreachable; never for a refusal someone must act on.
import { afterEach, describe, expect, it, vi } from "vitest";
import { backoffMs } from "../src/sender/backoff.js";
import { isTransient } from "../src/sender/transient-errors.js";

afterEach(() => vi.restoreAllMocks());

/** backoffMs with Math.random() fixed at `random`. */
function withRandom(random: number, attempt: number, options?: { baseMs?: number; maxMs?: number }) {
  vi.spyOn(Math, "random").mockReturnValue(random);
  return backoffMs(attempt, options);
}

describe("backoffMs", () => {
  it("doubles from 250 ms with every attempt, up to 30 s", () => {
    const ceilings = Array.from({ length: 10 }, (_, attempt) => withRandom(1, attempt));
    expect(ceilings).toEqual([250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  });

  it("waits a random 50 to 100 % of that, so senders that failed together come back apart", () => {
    expect(withRandom(0, 0)).toBe(125);
    expect(withRandom(0.5, 3)).toBe(1500);
    expect(withRandom(0, 20)).toBe(15_000);
    vi.restoreAllMocks();
    const waits = Array.from({ length: 200 }, () => backoffMs(4));
    for (const wait of waits) {
      expect(wait).toBeGreaterThanOrEqual(2000);
      expect(wait).toBeLessThanOrEqual(4000);
    }
    expect(new Set(waits).size).toBeGreaterThan(1);
  });

  it("takes its own start and cap", () => {
    expect(withRandom(1, 0, { baseMs: 100 })).toBe(100);
    expect(withRandom(1, 3, { baseMs: 100, maxMs: 500 })).toBe(500);
    expect(withRandom(1, 2, { maxMs: 600 })).toBe(600);
  });

  it("stays a finite number however many attempts failed", () => {
    expect(withRandom(1, 10_000)).toBe(30_000);
    expect(withRandom(1, 10_000, { baseMs: 1, maxMs: Number.MAX_SAFE_INTEGER })).toBe(2 ** 16);
  });
});

describe("isTransient", () => {
  // Connection exceptions, serialization failure and deadlock, too many connections, and a server
  // shutting down (admin, crash) or starting up.
  const sqlstates = "08000 08001 08003 08004 08006 40001 40P01 53300 57P01 57P02 57P03".split(" ");
  it.each(sqlstates)("waits out SQLSTATE %s", (code) => {
    expect(isTransient(Object.assign(new Error("from the server"), { code }))).toBe(true);
  });

  const network =
    "ECONNREFUSED ECONNRESET ECONNABORTED EPIPE ETIMEDOUT EHOSTUNREACH EHOSTDOWN ENETUNREACH ENETDOWN";
  it.each([...network.split(" "), "EAI_AGAIN", "ENOTFOUND"])(
    "waits out a network that answers %s",
    (code) => {
      expect(isTransient({ code, message: `connect ${code} 127.0.0.1:5432` })).toBe(true);
    },
  );

  it.each([
    "Connection terminated unexpectedly",
    "Connection terminated due to connection timeout",
    "timeout expired",
    "Client has encountered a connection error and is not queryable",
  ])("waits out node-postgres's %j, which has no code", (message) => {
    expect(isTransient(new Error(message))).toBe(true);
  });

  it.each([
    ["a wrong password", { code: "28P01", message: 'password authentication failed for user "mailer"' }],
    ["a missing database", { code: "3D000", message: 'database "mail" does not exist' }],
    ["a missing privilege", { code: "42501", message: "permission denied for schema dbmail" }],
    ["a missing function", { code: "42883", message: "function dbmail.claim_mailitems does not exist" }],
    ["a query cancelled", { code: "57014", message: "canceling statement due to statement timeout" }],
    ["a bug", new TypeError("Cannot read properties of undefined")],
    ["a message that only mentions a cut connection", new Error("after: Connection terminated")],
    ["a code that is not a string", { code: 8006, message: "odd" }],
    ["nothing", undefined],
    ["null", null],
    ["a string", "Connection terminated"],
  ])("does not wait out %s", (_what, error) => {
    expect(isTransient(error)).toBe(false);
  });
});
