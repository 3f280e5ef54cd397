// Child-process entry of the reference systems: `node references/worker.js <system> <config JSON>`.
// Each runs in a process of its own, like the sender, so every system is timed the same way: from the
// moment its process is started to the sink receiving the last message. (Only this file has effects on
// import: the parent imports the other modules for their settings.)
import type { System, WorkerConfig } from "./common.js";

async function main(): Promise<void> {
  const [system, json] = process.argv.slice(2) as [System, string];
  const config = JSON.parse(json) as WorkerConfig;
  const module =
    system === "nodemailer"
      ? await import("./nodemailer.js")
      : system === "graphile-worker"
        ? await import("./graphile.js")
        : await import("./pgboss.js");
  const stop = await module.work(config);
  process.send?.({ type: "ready" });
  const onSignal = () => {
    stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
