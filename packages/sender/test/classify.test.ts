import { describe, expect, it } from "vitest";
import { type SmtpError, verdictOf } from "../src/smtp/classify.js";

const error = (fields: Partial<SmtpError>): SmtpError => ({ message: "failed", ...fields });

describe("verdictOf", () => {
  it.each([
    ["a 550 to RCPT TO", { code: "EENVELOPE", responseCode: 550, command: "RCPT TO" }, "permanent"],
    ["a 554 to the end of DATA", { code: "EMESSAGE", responseCode: 554, command: "DATA" }, "permanent"],
    ["a 451 to RCPT TO", { code: "EENVELOPE", responseCode: 451, command: "RCPT TO" }, "transient"],
    ["a 421 greeting", { code: "EPROTOCOL", responseCode: 421, command: "CONN" }, "transient"],
    ["a timeout", { code: "ETIMEDOUT", command: "CONN" }, "transient"],
    ["a refused connection", { code: "ESOCKET", command: "CONN" }, "transient"],
    ["a cut connection", { code: "ECONNECTION" }, "transient"],
    ["a 5xx with no envelope or message code", { code: "EPROTOCOL", responseCode: 500 }, "transient"],
    ["a refused login", { code: "EAUTH", responseCode: 535, command: "AUTH PLAIN" }, "account"],
    ["no credentials", { code: "ENOAUTH" }, "account"],
    ["no OAuth2 token", { code: "EOAUTH2" }, "account"],
    ["a failed TLS handshake", { code: "ETLS", command: "CONN" }, "account"],
    [
      "a 5xx to MAIL FROM (the account's address)",
      { code: "EENVELOPE", responseCode: 553, command: "MAIL FROM" },
      "account",
    ],
    ["a 4xx to MAIL FROM", { code: "EENVELOPE", responseCode: 451, command: "MAIL FROM" }, "transient"],
  ] as const)("%s is %s", (_name, fields, verdict) => {
    expect(verdictOf(error(fields))).toBe(verdict);
  });
});
