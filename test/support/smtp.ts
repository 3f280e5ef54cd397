import { readFileSync } from "node:fs";
import { freePort } from "@pg-dbmail/dev/local-postgres";
import { type ParsedMail, simpleParser } from "mailparser";
import { SMTPServer, type SMTPServerOptions } from "smtp-server";

const tlsDir = new URL("../fixtures/tls/", import.meta.url);
/** A self-signed certificate for localhost / 127.0.0.1 (test only). */
export const testCertificate = {
  key: readFileSync(new URL("localhost.key", tlsDir)),
  cert: readFileSync(new URL("localhost.crt", tlsDir)),
};

/** One message as the server received it: the SMTP envelope, the raw bytes, and mailparser's view. */
export interface ReceivedMail {
  envelope: { from: string; to: string[] };
  raw: Buffer;
  parsed: ParsedMail;
  /** The user that authenticated, if any. */
  user?: string;
  /** When the end of DATA arrived (Date.now()). */
  at: number;
}

/** An SMTP reply to refuse a command with, e.g. { code: 451, message: "try later" }. */
export interface Refusal {
  code: number;
  message: string;
}

/**
 * How the server behaves; change it at any time (tests switch a server from refusing to accepting).
 * Each hook returns a refusal, or undefined to accept.
 */
export interface Behaviour {
  onMailFrom?: (address: string) => Refusal | undefined;
  onRcptTo?: (address: string) => Refusal | undefined;
  onData?: () => Refusal | undefined;
  /** Accept the connection but never greet (a hung server). */
  stallGreeting?: boolean;
  /** Take the message body, then never answer (a hung server mid-DATA). */
  stallData?: boolean;
  /** Cut the connection in the middle of DATA. */
  dropData?: boolean;
}

export interface TestSmtpServerOptions {
  /** Implicit TLS from the first byte (like port 465). */
  implicitTls?: boolean;
  /** Offer STARTTLS. */
  starttls?: boolean;
  /** Require this login. */
  auth?: { user: string; pass: string };
  /** Require an XOAUTH2 login (the only mechanism offered) whose token this accepts. */
  xoauth2?: (user: string, accessToken: string) => boolean;
  behaviour?: Behaviour;
  port?: number;
}

/** A real SMTP server on 127.0.0.1, scripted to accept, refuse, stall or drop. */
export class TestSmtpServer {
  readonly received: ReceivedMail[] = [];
  /** Connections opened to this server so far (a pooled sender opens few and reuses them). */
  connections = 0;
  /** The most connections ever open at once (a sender's pool bounds it). */
  maxOpen = 0;
  private readonly openSessions = new Set<string>();
  behaviour: Behaviour;
  private server?: SMTPServer;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly port: number,
    private readonly options: TestSmtpServerOptions,
  ) {
    this.behaviour = options.behaviour ?? {};
  }

  static async start(options: TestSmtpServerOptions = {}): Promise<TestSmtpServer> {
    const server = new TestSmtpServer(options.port ?? (await freePort()), options);
    await server.listen();
    return server;
  }

  /** Resolves when at least `count` messages have arrived; rejects after timeoutMs. */
  async waitFor(count: number, timeoutMs = 15_000): Promise<ReceivedMail[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`expected ${count} messages, received ${this.received.length}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received;
  }

  /** Stops listening (the server is "down"); start() brings it back on the same port. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    // Close open client connections too, or close() would wait for them.
    for (const connection of (server as unknown as { connections: Set<{ close(): void }> }).connections)
      connection.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  private async listen(): Promise<void> {
    const { options } = this;
    const config: SMTPServerOptions = {
      secure: options.implicitTls ?? false,
      ...(options.implicitTls || options.starttls ? testCertificate : {}),
      disabledCommands: options.starttls || options.implicitTls ? [] : ["STARTTLS"],
      authOptional: !options.auth && !options.xoauth2,
      ...(options.xoauth2 ? { authMethods: ["XOAUTH2"] } : {}),
      allowInsecureAuth: true,
      logger: false,
      size: 64 * 1024 * 1024,
      onAuth: (auth, _session, callback) => {
        if (options.xoauth2) {
          if (options.xoauth2(auth.username ?? "", auth.accessToken ?? ""))
            callback(null, { user: auth.username });
          // RFC 7628's error challenge: the client then gets a 535.
          else callback(null, { data: { status: "401", schemes: "bearer", scope: "mail" } });
          return;
        }
        const expected = options.auth;
        if (expected && auth.username === expected.user && auth.password === expected.pass) {
          callback(null, { user: auth.username });
        } else {
          callback(Object.assign(new Error("Invalid username or password"), { responseCode: 535 }));
        }
      },
      onConnect: (session, callback) => {
        this.connections++;
        this.openSessions.add(session.id);
        this.maxOpen = Math.max(this.maxOpen, this.openSessions.size);
        if (!this.behaviour.stallGreeting) callback();
      },
      onClose: (session) => {
        this.openSessions.delete(session.id);
      },
      onMailFrom: (address, _session, callback) =>
        callback(refusal(this.behaviour.onMailFrom?.(address.address))),
      onRcptTo: (address, _session, callback) =>
        callback(refusal(this.behaviour.onRcptTo?.(address.address))),
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          if (this.behaviour.dropData) dropConnection(this.server, session.id);
        });
        stream.on("end", async () => {
          if (this.behaviour.stallData) return;
          const refused = this.behaviour.onData?.();
          if (refused) return callback(refusal(refused));
          const raw = Buffer.concat(chunks);
          this.received.push({
            envelope: {
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
              to: session.envelope.rcptTo.map((r) => r.address),
            },
            raw,
            at: Date.now(),
            parsed: await simpleParser(raw),
            user: typeof session.user === "string" ? session.user : undefined,
          });
          for (const wake of this.waiters.splice(0)) wake();
          callback();
        });
      },
    };
    const server = new SMTPServer(config);
    server.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.server = server;
  }
}

function refusal(refused: Refusal | undefined): Error | null | undefined {
  return refused ? Object.assign(new Error(refused.message), { responseCode: refused.code }) : undefined;
}

function dropConnection(server: SMTPServer | undefined, sessionId: string): void {
  const connections = (
    server as unknown as { connections: Set<{ id: string; _socket: { destroy(): void } }> }
  )?.connections;
  for (const connection of connections ?? []) {
    if (connection.id === sessionId) connection._socket.destroy();
  }
}
