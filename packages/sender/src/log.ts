import pino from "pino";

export type Logger = pino.Logger;

/** JSON lines on stdout. Never give it passwords or message bodies (see docs/sender.md). */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime });
}
