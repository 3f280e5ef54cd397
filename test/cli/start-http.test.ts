// `dbmail start --http` from the command line (SPEC.md section 12): off by default (the process listens
// on no port at all), on through DBMAIL_HTTP as through the flag, a bad address refused (exit 2), and a
// port in use a clear error with its own exit code (14), before any database is touched.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { createServer } from "node:net";
import { freePort } from "@pg-dbmail/dev/local-postgres";
import { describe, expect, it } from "vitest";
import { get } from "../sender/monitoring/support.js";
import { db, launch, output, run, setUpCliTests, stop } from "../support/cli.js";
import { unique } from "../support/mail.js";

setUpCliTests();

/** The TCP ports a process listens on (Linux: its socket inodes, looked up in /proc/net/tcp and tcp6). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // Closed meanwhile.
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; the inode is the tenth field.
      if (fields[3] === "0A" && inodes.has(fields[9] as string)) {
        ports.push(Number.parseInt((fields[1] as string).split(":")[1] as string, 16));
      }
    }
  }
  return ports;
}

describe("dbmail start --http", () => {
  it("listens on nothing without it, and on exactly its port with DBMAIL_HTTP", {
    timeout: 60_000,
  }, async () => {
    const plain = launch(["start", "--database-url", db.url, "--sender-id", unique("no-http")]);
    await plain.waitForOutput(/"msg":"serving"/);
    expect(listeningPorts(plain.child.pid as number)).toEqual([]);
    expect((await stop(plain)).code).toBe(0);

    const port = await freePort();
    const monitored = launch(["start", "--database-url", db.url, "--sender-id", unique("http")], {
      DBMAIL_HTTP: `127.0.0.1:${port}`,
    });
    await monitored.waitForOutput(/"msg":"serving"/);
    expect(monitored.stdout()).toContain(`"http":"127.0.0.1:${port}"`);
    expect(listeningPorts(monitored.child.pid as number)).toEqual([port]);
    expect((await get(port, "/livez")).status).toBe(200);
    const ready = await get(port, "/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body).ready).toBe(true);
    // Only the three paths, only GET and HEAD.
    expect((await get(port, "/")).status).toBe(404);
    expect((await get(port, "/metrics", "POST")).status).toBe(405);
    const head = await get(port, "/livez", "HEAD");
    expect([head.status, head.body]).toEqual([200, ""]);
    expect((await stop(monitored)).code).toBe(0);
  });

  it("exits 14 naming the address when the port is in use, before serving anything", async () => {
    const port = await freePort();
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(port, "127.0.0.1", resolve));
    try {
      const senderId = unique("port-in-use");
      const result = await run([
        "start",
        "--database-url",
        db.url,
        "--sender-id",
        senderId,
        "--http",
        `127.0.0.1:${port}`,
      ]);
      expect(result.code).toBe(14);
      expect(result.stderr).toBe(
        `dbmail: --http: "127.0.0.1:${port}": cannot listen: the port is in use (another process listens on it)\n`,
      );
      // It never registered in the database.
      const { rows } = await db.query("SELECT 1 FROM dbmail.senders WHERE sender_id = $1", [senderId]);
      expect(rows).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it("refuses an address that is not HOST:PORT (exit 2)", async () => {
    for (const bad of ["9465", "localhost", "127.0.0.1:99999", "::1:9465"]) {
      const result = await run(["start", "--database-url", db.url, "--http", bad]);
      expect(result.code, bad).toBe(2);
      expect(output(result), bad).toContain(`--http: "${bad}": must be HOST:PORT`);
    }
  });
});
