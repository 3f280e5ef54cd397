import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { benchBacklog } from "./backlog.js";
import { stopAllChildren } from "./children.js";
import { type BenchResults, config, quick, sections, senderSettings } from "./config.js";
import { benchServer, createBenchDatabase, dropAllBenchDatabases } from "./database.js";
import { type DrainRun, drainOurs, drainReference } from "./drain.js";
import { benchEnqueue, benchSetEnqueue } from "./enqueue.js";
import { latencyGraphile, latencyOurs, latencyPgBoss } from "./latency.js";
import { attachmentRun } from "./memory.js";
import { graphileSettings, prepareGraphile } from "./references/graphile.js";
import { nodemailerSettings } from "./references/nodemailer.js";
import { pgBossSettings, preparePgBoss } from "./references/pgboss.js";
import { describeMachine, renderReport } from "./report.js";
import { benchScaling } from "./scaling.js";
import { Sink } from "./sink-client.js";

const resultsDir = new URL("../results/", import.meta.url);
const reportFile = new URL("../RESULTS.md", import.meta.url);
const plansFile = new URL("../results/plans.txt", import.meta.url);

async function main(): Promise<void> {
  const loadAtStart = loadavg();
  const server = await benchServer();
  const sink = await Sink.start();
  try {
    const c = config.connections;
    const results: BenchResults = {
      date: new Date().toISOString(),
      quick,
      machine: await describeMachine(server.adminUrl, server.own),
      config,
      settings: {
        "pg-dbmail": Object.fromEntries(
          config.drain.senders.map((s) => [`${s} sender(s)`, senderSettings(s)]),
        ),
        nodemailer: nodemailerSettings(c),
        "graphile-worker": graphileSettings(c),
        "pg-boss": pgBossSettings(c),
      },
    };

    if (sections.has("enqueue")) {
      const { seconds, repetitions } = config.enqueue;
      const db = await createBenchDatabase(server.adminUrl, { tag: "enqueue" });
      try {
        results.enqueue = [];
        for (const clients of config.enqueue.clients) {
          console.log(
            `enqueue, ${clients} client(s): ${repetitions} x ${seconds} s each for sp_send_dbmail and the raw floor`,
          );
          results.enqueue.push(await benchEnqueue(db.url, clients, seconds, repetitions));
        }
        console.log(
          `enqueue, set-based: ${repetitions} x ${seconds} s of 1,000-mail statements and the raw floor`,
        );
        results.setEnqueue = await benchSetEnqueue(db.url, seconds, repetitions);
      } finally {
        await db.drop();
      }
    }

    if (sections.has("scaling")) {
      const { clients, seconds, repetitions } = config.scaling;
      console.log(
        `scaling: ${repetitions} x ${seconds} s per system at ${clients.join(", ")} clients (INSERT, sp_send_dbmail, ` +
          "the application transaction with each, graphile add_job, pg-boss send)",
      );
      results.scaling = await benchScaling(server.adminUrl, clients, seconds, repetitions);
    }

    if (sections.has("drain")) {
      const n = config.drain.mails;
      const runs: Record<string, DrainRun[]> = {};
      const record = (system: string, run: DrainRun) => {
        runs[system] = [...(runs[system] ?? []), run];
        const rss = run.peakRssMiB.map((r) => r.toFixed(0)).join("/");
        console.log(
          `  ${system}: ${run.mailsPerSecond.toFixed(0)} mails/s (${run.seconds.toFixed(1)} s, first after ` +
            `${run.firstMailMs.toFixed(0)} ms, peak RSS ${rss} MiB, cpu ${run.cpuSeconds.map((x) => x.toFixed(1)).join("/")} s, ` +
            `sink cpu ${run.sinkCpuSeconds.toFixed(1)} s, received ${run.received})`,
        );
      };
      const base = { smtpPort: sink.port, connections: c };
      // Systems alternate within each repetition, so drift (caches, autovacuum elsewhere) hits all alike.
      for (let rep = 1; rep <= config.drain.repetitions; rep++) {
        console.log(`drain of ${n} mails, repetition ${rep} of ${config.drain.repetitions}`);
        record(
          "nodemailer",
          await drainReference(sink, n, "nodemailer", { ...base, n, settings: nodemailerSettings(c) }),
        );
        for (const senders of config.drain.senders) {
          record(
            `pg-dbmail ${senders}`,
            await drainOurs(server.adminUrl, sink, n, senders, senderSettings(senders)),
          );
        }
        const graphileDb = await prepareGraphile(server.adminUrl, n);
        record(
          "graphile-worker",
          await drainReference(
            sink,
            n,
            "graphile-worker",
            { ...base, url: graphileDb.url, settings: graphileSettings(c) },
            graphileDb,
          ),
        );
        const bossDb = await preparePgBoss(server.adminUrl, n);
        record(
          "pg-boss",
          await drainReference(
            sink,
            n,
            "pg-boss",
            { ...base, url: bossDb.url, settings: pgBossSettings(c) },
            bossDb,
          ),
        );
      }
      results.drain = { mails: n, runs };
    }

    if (sections.has("latency")) {
      const samples = config.latency.samples;
      console.log(`idle latency, ${samples} samples each`);
      results.latency = {};
      results.latency["pg-dbmail"] = await latencyOurs(server.adminUrl, sink, samples, senderSettings(1));
      results.latency["graphile-worker"] = await latencyGraphile(server.adminUrl, sink, samples, c);
      results.latency["pg-boss"] = await latencyPgBoss(server.adminUrl, sink, samples, c);
      for (const [system, r] of Object.entries(results.latency))
        console.log(`  ${system}: p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms`);
    }

    if (sections.has("memory")) {
      console.log("memory: one 20 MB attachment among 1,000 small mails");
      const attachment: DrainRun[] = [];
      for (let rep = 1; rep <= config.memory.repetitions; rep++) {
        const run = await attachmentRun(server.adminUrl, sink, senderSettings(1));
        console.log(`  peak RSS ${run.peakRssMiB[0]?.toFixed(0)} MiB, ${run.seconds.toFixed(1)} s`);
        attachment.push(run);
      }
      results.memory = { attachment };
    }

    if (sections.has("backlog")) {
      const { history, waiting, seconds, repetitions } = config.backlog;
      console.log(`backlog: empty, ${history} sent in history, then ${waiting} waiting unsent`);
      const db = await createBenchDatabase(server.adminUrl, { tag: "backlog" });
      try {
        const { plans, ...backlog } = await benchBacklog(db.url, { history, waiting }, seconds, repetitions);
        results.backlog = backlog;
        // The plans are long: a file of their own beside RESULTS.md.
        mkdirSync(resultsDir, { recursive: true });
        writeFileSync(plansFile, `${plans.join("\n\n")}\n`);
        console.log(
          `  ratios ${JSON.stringify(backlog.ratios)}; sequential scans: ${backlog.seqScans.length}`,
        );
      } finally {
        await db.drop();
      }
    }

    results.machine.sinkCpuSeconds = await sink.stop();
    // The machine may be shared: say how busy it was.
    results.machine.loadAverage = { start: loadAtStart, end: loadavg() };
    save(results);
  } finally {
    await sink.stop();
    await stopAllChildren();
    await dropAllBenchDatabases();
    await server.stop();
  }
}

/** latest.json keeps the sections of earlier runs this one did not produce; RESULTS.md shows this run. */
function save(results: BenchResults): void {
  mkdirSync(resultsDir, { recursive: true });
  const latest = new URL("latest.json", resultsDir);
  const previous = existsSync(latest) ? (JSON.parse(readFileSync(latest, "utf8")) as object) : {};
  writeFileSync(latest, `${JSON.stringify({ ...previous, ...results }, null, 2)}\n`);
  const report = renderReport(results);
  writeFileSync(reportFile, report);
  console.log(`\n${report}\nwritten to bench/RESULTS.md and bench/results/latest.json`);
}

// Interrupted: stop what we started and drop our databases before leaving.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`${signal}: cleaning up`);
    void stopAllChildren()
      .then(dropAllBenchDatabases)
      .finally(() => process.exit(130));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
