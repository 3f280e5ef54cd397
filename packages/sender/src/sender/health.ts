import type { WorkerState } from "./readiness.js";

/** Whether one served database is ready, as /readyz reports it. */
export interface DatabaseHealth {
  ready: boolean;
  /** Where its worker is: connecting, refused, serving or stopped. */
  state: WorkerState["state"];
  /** Served, and the database answers as it should (dbmail_database_up). */
  connected: boolean;
  /** How it hears of new mail while serving: its LISTEN connection, or polling while that is down. */
  wakeup?: "listen" | "polling";
  /** What is wrong; empty when ready. */
  problems: string[];
}

/** Every served database's health, by name; ready when all are. */
export interface HealthReport {
  ready: boolean;
  databases: Record<string, DatabaseHealth>;
}

/** What is wrong with a worker that does not serve (yet, or any more). */
export function notServing(state: WorkerState): DatabaseHealth {
  const problem =
    state.state === "connecting"
      ? `connecting${state.reason ? `: ${state.reason}` : ""}`
      : state.state === "refused"
        ? `refused, retrying: ${state.reason}`
        : state.state === "stopped"
          ? "no longer served"
          : "serving";
  return { ready: false, state: state.state, connected: false, problems: [problem] };
}
