// Every process the benchmark starts goes through here, so that all of them are stopped at the end even
// when a measurement throws halfway.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

export interface Child {
  process: ChildProcess;
  pid: number;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
  /** The last 20 kB of its stdout and stderr, for error messages. */
  output(): string;
}

const running = new Set<Child>();

function track(child: ChildProcess): Child {
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const tracked: Child = {
    process: child,
    pid: child.pid as number,
    exited: new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal }))),
    alive: () => child.exitCode === null && child.signalCode === null,
    output: () => output,
  };
  running.add(tracked);
  void tracked.exited.then(() => running.delete(tracked));
  return tracked;
}

/** Starts a Node.js script of this package (a path relative to bench/dist) with an IPC channel. */
export function forkScript(relative: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  const script = fileURLToPath(new URL(relative, import.meta.url));
  return track(
    fork(script, args, { stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, ...env } }),
  );
}

/** Starts any program. */
export function spawnProgram(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  return track(spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } }));
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
export async function stopChild(child: Child, graceMs = 5000): Promise<void> {
  if (!child.alive()) return;
  child.process.kill("SIGTERM");
  const timer = setTimeout(() => child.process.kill("SIGKILL"), graceMs);
  await child.exited;
  clearTimeout(timer);
}

/** Stops everything still running (the end of a run, failed or not). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((child) => stopChild(child, 2000)));
}

// Last resort if the parent dies from an uncaught error: no orphans.
process.on("exit", () => {
  for (const child of running) child.process.kill("SIGKILL");
});

/** Peak resident set size (VmHWM) of a live process, in MiB; undefined once it is gone. */
export function peakRssMiB(pid: number): number | undefined {
  try {
    const kb = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) of a live process so far, seconds; undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    // Fields after the command name (which may contain spaces): utime and stime are the 12th and 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
// USER_HZ: 100 on every Linux architecture Node.js runs on.
const CLOCK_TICKS = 100;

export interface Watched {
  /** Highest VmHWM seen, MiB. */
  peakRssMiB(): number;
  /** Last CPU time seen, seconds. */
  cpuSeconds(): number;
}

/**
 * Follows a process's VmHWM and CPU time until it exits, reading /proc every 100 ms: both only grow, so
 * the last reading taken while it was alive is the value at its end. Read once more right before we stop
 * a process ourselves.
 */
export function watchProcess(child: Child): Watched {
  let peak = 0;
  let cpu = 0;
  const read = () => {
    peak = Math.max(peak, peakRssMiB(child.pid) ?? 0);
    cpu = Math.max(cpu, cpuSecondsOf(child.pid) ?? 0);
  };
  read();
  const timer = setInterval(read, 100);
  void child.exited.then(() => clearInterval(timer));
  return {
    peakRssMiB: () => {
      if (child.alive()) read();
      return peak;
    },
    cpuSeconds: () => {
      if (child.alive()) read();
      return cpu;
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Wall-clock milliseconds with sub-millisecond resolution, the same clock as the sink's. */
export const now = () => performance.timeOrigin + performance.now();
