import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { benchServer, createBenchDatabase } from "./database.js";
import { benchEnqueue, type EnqueueResult } from "./enqueue.js";
import { format } from "./stats.js";

// npm run bench [-- --quick]: a short smoke run, or the full one.
const quick = process.argv.includes("--quick");
const seconds = quick ? 2 : 5;
const repetitions = quick ? 2 : 5;

const resultsDir = new URL("../results/", import.meta.url);

async function main(): Promise<void> {
  const server = await benchServer();
  const db = await createBenchDatabase(server.adminUrl);
  try {
    const enqueue: EnqueueResult[] = [];
    for (const clients of [1, 4]) {
      console.log(
        `enqueue, ${clients} client(s): ${repetitions} x ${seconds} s each for sp_send_dbmail and the raw floor`,
      );
      enqueue.push(await benchEnqueue(db.url, clients, seconds, repetitions));
    }
    const machine = {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    };
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(
      new URL("latest.json", resultsDir),
      `${JSON.stringify({ date: new Date().toISOString(), quick, machine, enqueue }, null, 2)}\n`,
    );
    const table = [
      "| clients | sp_send_dbmail calls/s | raw INSERT+NOTIFY /s | ratio | p50 / p99 ms (dbmail) | p50 / p99 ms (raw) |",
      "|---|---|---|---|---|---|",
      ...enqueue.map(
        (e) =>
          `| ${e.clients} | ${format(e.dbmailPerSecond)} | ${format(e.rawPerSecond)} | ${format(e.ratio, 2)} | ` +
          `${e.dbmailP50Ms.toFixed(3)} / ${e.dbmailP99Ms.toFixed(3)} | ${e.rawP50Ms.toFixed(3)} / ${e.rawP99Ms.toFixed(3)} |`,
      ),
    ].join("\n");
    console.log(
      `\n${table}\n\nmedian (min-max) over ${repetitions} repetitions; written to bench/results/latest.json`,
    );
  } finally {
    await db.drop();
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
