// OAuth2Tokens against a token endpoint of the test's own (node:http): the grants, the cache, and the
// two ways it fails.
import { createServer, type IncomingMessage, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OAuth2Error, OAuth2Tokens } from "../src/smtp/oauth2.js";

interface Seen {
  form: Record<string, string>;
}

let server: Server;
let url: string;
const seen: Seen[] = [];
/** What the endpoint answers next: status and JSON body. */
let answer: { status: number; body: unknown } = { status: 200, body: {} };
let counter = 0;

async function readForm(req: IncomingMessage): Promise<Record<string, string>> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return Object.fromEntries(new URLSearchParams(text));
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    seen.push({ form: await readForm(req) });
    const { status, body } = answer;
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(typeof body === "function" ? body() : body));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}/token`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const client = (extra = {}) => ({ tokenUrl: url, clientId: "cid", clientSecret: "s3cret", ...extra });
const fresh = () => ({ status: 200, body: () => ({ access_token: `token-${++counter}`, expires_in: 3600 }) });

describe("OAuth2Tokens", () => {
  it("uses client credentials without a refresh token, and caches the token", async () => {
    seen.length = 0;
    answer = fresh();
    const tokens = new OAuth2Tokens(5000);
    const [a, b] = await Promise.all([
      tokens.token("acct1", client({ scope: "https://outlook.office365.com/.default" })),
      tokens.token("acct1", client({ scope: "https://outlook.office365.com/.default" })),
    ]);
    expect(a).toBe(b);
    expect(await tokens.token("acct1", client())).toBe(a);
    expect(seen.map((s) => s.form)).toEqual([
      {
        grant_type: "client_credentials",
        client_id: "cid",
        client_secret: "s3cret",
        scope: "https://outlook.office365.com/.default",
      },
    ]);
  });

  it("uses the refresh-token grant when the account has one; forget() fetches anew", async () => {
    seen.length = 0;
    answer = fresh();
    const tokens = new OAuth2Tokens(5000);
    const first = await tokens.token("acct2", client({ refreshToken: "r-1" }));
    tokens.forget("acct2");
    const second = await tokens.token("acct2", client({ refreshToken: "r-1" }));
    expect(second).not.toBe(first);
    expect(seen.map((s) => s.form.grant_type)).toEqual(["refresh_token", "refresh_token"]);
    expect(seen[0]?.form.refresh_token).toBe("r-1");
  });

  it("fetches a new token once the cached one is about to expire", async () => {
    seen.length = 0;
    answer = { status: 200, body: () => ({ access_token: `short-${++counter}`, expires_in: "1" }) };
    const tokens = new OAuth2Tokens(5000);
    const first = await tokens.token("acct3", client());
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const second = await tokens.token("acct3", client());
    expect(second).not.toBe(first);
    expect(seen).toHaveLength(2);
  });

  it("a refused client is EOAUTH2, naming the endpoint's error but never the secret", async () => {
    answer = {
      status: 401,
      body: { error: "invalid_client", error_description: "AADSTS7000215: bad secret" },
    };
    const error = await new OAuth2Tokens(5000).token("acct4", client()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuth2Error);
    expect((error as OAuth2Error).code).toBe("EOAUTH2");
    expect((error as Error).message).toBe(
      `the token endpoint ${url} answered 401 (invalid_client: AADSTS7000215: bad secret)`,
    );
    expect((error as Error).message).not.toContain("s3cret");
  });

  it("an endpoint that fails or cannot be reached is ETOKENENDPOINT (worth retrying)", async () => {
    answer = { status: 503, body: {} };
    const failing = await new OAuth2Tokens(5000).token("acct5", client()).catch((e: unknown) => e);
    expect((failing as OAuth2Error).code).toBe("ETOKENENDPOINT");
    answer = { status: 200, body: { token_type: "Bearer" } };
    const empty = await new OAuth2Tokens(5000).token("acct5", client()).catch((e: unknown) => e);
    expect((empty as OAuth2Error).code).toBe("ETOKENENDPOINT");
    const down = await new OAuth2Tokens(2000)
      .token("acct5", client({ tokenUrl: "http://127.0.0.1:1/token" }))
      .catch((e: unknown) => e);
    expect((down as OAuth2Error).code).toBe("ETOKENENDPOINT");
    expect((down as Error).message).toContain("could not be reached");
  });
});
