import { safeText } from "../safe-text.js";

/** An account's OAuth2 client, with its secrets resolved. */
export interface OAuth2Client {
  tokenUrl: string;
  clientId: string;
  /** Without one (a public client), only the refresh-token grant. */
  clientSecret?: string;
  scope?: string;
  /** With one, the refresh-token grant; without, client credentials. */
  refreshToken?: string;
}

/**
 * A token could not be had. `EOAUTH2`: the endpoint refused the client (invalid_client, invalid_grant,
 * unauthorized_client...): the account is broken until someone fixes its settings. `ETOKENENDPOINT`: the
 * endpoint could not be reached or failed (network, timeout, 5xx, an answer that is not a token): a
 * later attempt, or another account, may succeed. Messages never contain the client secret or a token.
 */
export class OAuth2Error extends Error {
  override name = "OAuth2Error";
  constructor(
    readonly code: "EOAUTH2" | "ETOKENENDPOINT",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A token is renewed when less than this much of its life is left (or a tenth of it, if shorter). */
const RENEW_BEFORE_MS = 60_000;

interface CachedToken {
  accessToken: string;
  /** When to fetch a new one (monotonic clock), some time before it expires. */
  renewAt: number;
}

/**
 * Access tokens for XOAUTH2, one per account: fetched from the account's token endpoint, kept until
 * shortly before they expire, shared by every message of the account (one fetch however many ask at
 * once). The sender logs in with the token as the SMTP password of the XOAUTH2 mechanism.
 */
export class OAuth2Tokens {
  private readonly cached = new Map<string, CachedToken>();
  private readonly fetching = new Map<string, Promise<CachedToken>>();

  constructor(private readonly timeoutMs: number) {}

  /** A token for the client, from the cache or fetched now. `key` names the account. */
  async token(key: string, client: OAuth2Client): Promise<string> {
    const cached = this.cached.get(key);
    if (cached && performance.now() < cached.renewAt) return cached.accessToken;
    let fetching = this.fetching.get(key);
    if (!fetching) {
      fetching = this.fetchToken(client).finally(() => this.fetching.delete(key));
      this.fetching.set(key, fetching);
    }
    const fresh = await fetching;
    this.cached.set(key, fresh);
    return fresh.accessToken;
  }

  /** Forgets the account's token (the server refused it: revoked, or expired early). */
  forget(key: string): void {
    this.cached.delete(key);
  }

  private async fetchToken(client: OAuth2Client): Promise<CachedToken> {
    const form = new URLSearchParams({ client_id: client.clientId });
    if (client.clientSecret) form.set("client_secret", client.clientSecret);
    if (client.refreshToken) {
      form.set("grant_type", "refresh_token");
      form.set("refresh_token", client.refreshToken);
    } else {
      form.set("grant_type", "client_credentials");
    }
    if (client.scope) form.set("scope", client.scope);
    const asked = performance.now();
    let response: Response;
    let body: unknown;
    try {
      response = await fetch(client.tokenUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: form,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      body = await response.json().catch(() => undefined);
    } catch (error) {
      throw new OAuth2Error(
        "ETOKENENDPOINT",
        `the token endpoint ${client.tokenUrl} could not be reached: ${safeText((error as Error).message, 200)}`,
        { cause: error },
      );
    }
    const answer = (body ?? {}) as Record<string, unknown>;
    if (!response.ok) {
      const reason = [answer.error, answer.error_description]
        .filter((part) => typeof part === "string")
        .map((part) => safeText(part as string, 300))
        .join(": ");
      // 4xx with an OAuth error: the client or its grant is refused. Anything else may pass.
      const refused = response.status >= 400 && response.status < 500 && typeof answer.error === "string";
      throw new OAuth2Error(
        refused ? "EOAUTH2" : "ETOKENENDPOINT",
        `the token endpoint ${client.tokenUrl} answered ${response.status}${reason ? ` (${reason})` : ""}`,
      );
    }
    if (typeof answer.access_token !== "string" || answer.access_token === "") {
      throw new OAuth2Error(
        "ETOKENENDPOINT",
        `the token endpoint ${client.tokenUrl} answered without an access_token`,
      );
    }
    // expires_in is seconds (RFC 6749 5.1); some endpoints send it as a string, some not at all (an hour).
    const expiresIn = Number(answer.expires_in ?? 3600);
    const lifeMs = (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 3600) * 1000;
    const margin = Math.min(RENEW_BEFORE_MS, lifeMs / 10);
    return { accessToken: answer.access_token, renewAt: asked + Math.max(0, lifeMs - margin) };
  }
}
