import { randomBytes } from "node:crypto";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** How the endpoint answers: tokens, a refusal of the client, or a failure of its own. */
export type TokenEndpointMode = "issue" | "invalid_client" | "unavailable";

/**
 * An OAuth2 token endpoint on 127.0.0.1 (RFC 6749 section 5): it issues random bearer tokens that live
 * `lifetimeSeconds`, to one client (id and secret, or a refresh token), and remembers them so an SMTP
 * server of the test's own can accept only a currently valid one (see TestSmtpServer's xoauth2).
 */
export class TestTokenEndpoint {
  mode: TokenEndpointMode = "issue";
  lifetimeSeconds = 3600;
  /** Every request's form fields, in order. */
  readonly requests: Record<string, string>[] = [];
  /** Every token issued, with when it expires (Date.now() based). */
  readonly issued = new Map<string, number>();

  private constructor(
    private readonly server: Server,
    readonly client: { id: string; secret: string; refreshToken: string },
  ) {}

  static async start(): Promise<TestTokenEndpoint> {
    const client = {
      id: `client-${randomBytes(3).toString("hex")}`,
      secret: `secret-${randomBytes(8).toString("hex")}`,
      refreshToken: `refresh-${randomBytes(8).toString("hex")}`,
    };
    let endpoint: TestTokenEndpoint | undefined;
    const server = createServer((request, response) => {
      let body = "";
      request.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      request.on("end", () => endpoint?.answer(Object.fromEntries(new URLSearchParams(body)), response));
    });
    endpoint = new TestTokenEndpoint(server, client);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return endpoint;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/oauth2/token`;
  }

  /** Whether the token was issued here and has not expired or been revoked. */
  valid(token: string): boolean {
    const expires = this.issued.get(token);
    return expires !== undefined && Date.now() < expires;
  }

  /** Every token issued so far stops being valid (as when a tenant revokes them). */
  revokeAll(): void {
    this.issued.clear();
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private answer(form: Record<string, string>, response: ServerResponse): void {
    this.requests.push(form);
    const reply = (status: number, json: unknown) => {
      response.writeHead(status, { "content-type": "application/json" });
      response.end(JSON.stringify(json));
    };
    if (this.mode === "unavailable") {
      reply(503, { message: "service unavailable" });
      return;
    }
    const grantOk =
      form.client_id === this.client.id &&
      (form.grant_type === "client_credentials"
        ? form.client_secret === this.client.secret
        : form.grant_type === "refresh_token" && form.refresh_token === this.client.refreshToken);
    if (this.mode === "invalid_client" || !grantOk) {
      reply(401, { error: "invalid_client", error_description: "client authentication failed" });
      return;
    }
    const token = `token-${randomBytes(12).toString("hex")}`;
    this.issued.set(token, Date.now() + this.lifetimeSeconds * 1000);
    reply(200, { access_token: token, token_type: "Bearer", expires_in: this.lifetimeSeconds });
  }
}
