// The scaling section of bench/RESULTS.md and its targets (issue 17), from one run's ScalingResult.
import { perRepetition, rateOf, SCALING_SYSTEMS, type ScalingResult } from "./scaling.js";
import { format, summarise } from "./stats.js";

const yes = (met: boolean) => (met ? "**met**" : "**not met**");
const MAX_INSTRUCTIONS = 600_000;

/** The rows of the targets table. */
export function scalingTargets(r: ScalingResult): string[] {
  const rows: string[] = [];
  for (const n of r.clients.filter((c) => c !== 1)) {
    // (sp_send_dbmail at n / at 1) / (INSERT at n / at 1), within each repetition.
    const ratio = perRepetition(
      r,
      (rep) =>
        rateOf(r, "sp_send_dbmail", n, rep) /
        rateOf(r, "sp_send_dbmail", 1, rep) /
        (rateOf(r, "INSERT", n, rep) / rateOf(r, "INSERT", 1, rep)),
    );
    if (ratio)
      rows.push(
        `| enqueue scaling, ${n} clients: sp_send_dbmail's ${n}/1-client ratio >= 0.8x a plain INSERT's | ${format(ratio, 2)}x | ${yes(ratio.median >= 0.8)} |`,
      );
  }
  const top = Math.max(...r.clients);
  const app = perRepetition(
    r,
    (rep) => rateOf(r, "app + sp_send_dbmail", top, rep) / rateOf(r, "app + INSERT", top, rep),
  );
  if (app)
    rows.push(
      `| application transaction sending one mail, ${top} clients >= 0.5x the same inserting into a plain table | ${format(app, 2)}x | ${yes(app.median >= 0.5)} |`,
    );
  for (const n of r.clients) {
    const peers = perRepetition(
      r,
      (rep) =>
        rateOf(r, "sp_send_dbmail", n, rep) /
        Math.max(rateOf(r, "graphile add_job", n, rep), rateOf(r, "pg-boss send", n, rep)),
    );
    if (peers)
      rows.push(
        `| enqueue, ${n} client(s): sp_send_dbmail >= the faster of graphile add_job and pg-boss send | ${format(peers, 2)}x | ${yes(peers.median >= 1)} |`,
      );
  }
  const ins = r.instructions;
  rows.push(
    typeof ins === "number"
      ? `| server instructions per common sp_send_dbmail call <= ${MAX_INSTRUCTIONS.toLocaleString("en")} | ${ins.toLocaleString("en")} | ${yes(ins <= MAX_INSTRUCTIONS)} |`
      : `| server instructions per common sp_send_dbmail call <= ${MAX_INSTRUCTIONS.toLocaleString("en")} | ${ins} | |`,
  );
  return rows;
}

/** The section: every rate, and each system's scaling from 1 client. */
export function scalingSection(r: ScalingResult): string[] {
  const out = [
    "## Enqueue scaling",
    "",
    `Transactions per second, pgbench-style: each client a connection of its own running transactions back to back, ${r.repetitions} x ${r.seconds} s ` +
      "per system and client count, every system in turn within each repetition. No worker or sender runs: this is " +
      "what queueing costs the application. INSERT: one plain INSERT into a comparable table (no NOTIFY). " +
      "sp_send_dbmail: the common call (one recipient, default profile, text body). app + ...: a transaction that " +
      "updates a row of its own (one per client) and then does the INSERT or the call, in one round trip. " +
      "graphile add_job: `graphile_worker.add_job` (it sends NOTIFY on every call). pg-boss send: `boss.send()` from " +
      "as many loops over one instance with as many connections.",
    "",
    `| system | ${r.clients.map((n) => `${n} client${n === 1 ? "" : "s"}/s`).join(" | ")} | ${r.clients
      .filter((n) => n !== 1)
      .map((n) => `${n}/1`)
      .join(" | ")} |`,
    `|---|${r.clients.map(() => "---").join("|")}|${r.clients
      .filter((n) => n !== 1)
      .map(() => "---")
      .join("|")}|`,
  ];
  for (const system of SCALING_SYSTEMS) {
    const rates = r.clients.map((n) => format(summarise(r.rates[system]?.[String(n)] ?? [Number.NaN])));
    const scaling = r.clients
      .filter((n) => n !== 1)
      .map((n) => {
        const s = perRepetition(r, (rep) => rateOf(r, system, n, rep) / rateOf(r, system, 1, rep));
        return s ? format(s, 2) : "n/a";
      });
    out.push(`| ${system} | ${rates.join(" | ")} | ${scaling.join(" | ")} |`);
  }
  out.push("");
  out.push(
    typeof r.instructions === "number"
      ? `Server instructions per common sp_send_dbmail call (bench/enqueue-instructions.sh, callgrind): ${r.instructions.toLocaleString("en")}.`
      : `Server instructions per call: ${r.instructions} (run bash bench/enqueue-instructions.sh as root).`,
  );
  out.push("");
  return out;
}
