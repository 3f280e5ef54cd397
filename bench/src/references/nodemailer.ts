// Reference (a): nodemailer alone, sending from memory: no database at all, so the SMTP ceiling of this
// machine, this sink and this number of connections.
import { message } from "../mail.js";
import { pooledTransport, type WorkerConfig } from "./common.js";

/** Settings recorded in the report. */
export const nodemailerSettings = (connections: number) => ({
  maxConnections: connections,
  // Messages handed to the pool at once: enough to keep every connection busy, without queuing
  // thousands of messages inside nodemailer.
  inFlight: 2 * connections,
});

export async function work(config: WorkerConfig): Promise<() => Promise<void>> {
  const transport = pooledTransport(config);
  const n = config.n ?? 0;
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = ++next;
      await transport.sendMail(message(i));
    }
  };
  const done = Promise.all(
    Array.from({ length: nodemailerSettings(config.connections).inFlight }, lane),
  ).finally(() => transport.close());
  done.catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
  return async () => {
    next = n;
    await done.catch(() => {});
  };
}
