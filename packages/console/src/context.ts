import type { Session } from "./sessions.js";

/** What the console's middleware hands to every page: the signed-in session. */
export interface ConsoleEnv {
  Variables: { session: Session };
}
