// Collects what every scenario recorded (support.ts recordResult) and writes results/REPORT.md at the end.
import { rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { LONG, readResults, resultsDir, resultsFile } from "./support.js";

export default function setup() {
  rmSync(resultsFile, { force: true });
  const started = Date.now();
  return () => {
    const results = readResults();
    const lines = [
      "# Fault-injection results",
      "",
      `- date: ${new Date().toISOString()}`,
      `- machine: ${cpus().length} cores (${cpus()[0]?.model ?? "unknown"}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory, node ${process.version}`,
      `- mode: ${LONG || process.env.FAULTS_LONG === "1" ? "long" : "quick"}; run time ${Math.round((Date.now() - started) / 1000)} s`,
      "",
      "| scenario | mails | lost | duplicates | maxRecoverySeconds | notes |",
      "|---|---:|---:|---:|---:|---|",
      ...results.map(
        (r) =>
          `| ${r.scenario} | ${r.mails} | ${r.lost} | ${r.duplicates} | ${r.maxRecoverySeconds ?? "-"} | ${r.notes.replaceAll("|", "\\|")} |`,
      ),
      "",
    ];
    writeFileSync(`${resultsDir}REPORT.md`, lines.join("\n"));
    rmSync(resultsFile, { force: true });
  };
}
