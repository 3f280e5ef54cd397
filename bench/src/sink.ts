// The benchmark's SMTP sink, run as a child process of its own (sink-client.ts starts it) so that
// receiving mail never shares an event loop or a core's time slice with a system under test.
// Plain SMTP on 127.0.0.1, no AUTH, no TLS: it accepts everything, counts messages and bytes, and drops
// the data. Talks to its parent over IPC.
import { SMTPServer } from "smtp-server";

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
const now = () => performance.timeOrigin + performance.now();

let messages = 0;
let bytes = 0;
let firstAt = 0;
let lastAt = 0;
/** When set, every message's end of DATA is reported at once (the latency runs need each one). */
let watch = false;

const send = (message: object): void => {
  process.send?.(message);
};

const server = new SMTPServer({
  authOptional: true,
  disabledCommands: ["AUTH", "STARTTLS"],
  // A reverse DNS lookup per connection would add latency that no real mail server on a LAN pays.
  disableReverseLookup: true,
  // Several systems keep pools open at once between runs: never turn a connection away.
  maxClients: 1000,
  logger: false,
  // Room for the 20 MB attachment after base64.
  size: 64 * 2 ** 20,
  onData(stream, _session, callback) {
    let size = 0;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
    });
    stream.on("end", () => {
      const at = now();
      messages++;
      bytes += size;
      if (firstAt === 0) firstAt = at;
      lastAt = at;
      if (watch) send({ type: "mail", at, messages });
      callback();
    });
  },
});

server.on("error", (error) => send({ type: "error", message: error.message }));

process.on("message", (message: { type: string; watch?: boolean }) => {
  switch (message.type) {
    case "stats":
      send({ type: "stats", messages, bytes, firstAt, lastAt, cpu: process.cpuUsage() });
      break;
    case "reset":
      messages = 0;
      bytes = 0;
      firstAt = 0;
      lastAt = 0;
      watch = message.watch ?? false;
      send({ type: "reset" });
      break;
    case "stop":
      // No graceful close: a system's idle pooled connections would hold it open for closeTimeout.
      process.send?.({ type: "stopped", messages, bytes, cpu: process.cpuUsage() }, () => process.exit(0));
      break;
  }
});

// The parent went away without stopping us: do not linger.
process.on("disconnect", () => process.exit(0));

server.listen(0, "127.0.0.1", () => {
  const address = server.server.address();
  send({ type: "ready", port: typeof address === "object" && address ? address.port : 0 });
});
