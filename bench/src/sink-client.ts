import { type Child, forkScript, stopChild } from "./children.js";

export interface SinkStats {
  messages: number;
  bytes: number;
  /** Wall-clock ms (see now()) of the first and last end of DATA since the last reset. */
  firstAt: number;
  lastAt: number;
  /** The sink process's CPU time so far, microseconds. */
  cpu: NodeJS.CpuUsage;
}

interface SinkMessage {
  type: string;
  port?: number;
  at?: number;
  message?: string;
}

/** The parent's handle on the SMTP sink process (sink.ts). */
export class Sink {
  private replies: ((message: SinkMessage & Partial<SinkStats>) => void)[] = [];
  private mailWaiters: ((at: number) => void)[] = [];
  private arrived: number[] = [];

  private constructor(
    private readonly child: Child,
    readonly port: number,
  ) {
    child.process.on("message", (message: SinkMessage & Partial<SinkStats>) => {
      if (message.type === "mail") {
        const waiter = this.mailWaiters.shift();
        if (waiter) waiter(message.at as number);
        else this.arrived.push(message.at as number);
      } else if (message.type === "error") {
        console.error(`sink: ${message.message}`);
      } else {
        this.replies.shift()?.(message);
      }
    });
  }

  static async start(): Promise<Sink> {
    const child = forkScript("./sink.js");
    const port = await new Promise<number>((resolve, reject) => {
      child.process.once("message", (m: SinkMessage) => resolve(m.port as number));
      void child.exited.then(() => reject(new Error(`the SMTP sink exited: ${child.output()}`)));
    });
    return new Sink(child, port);
  }

  private request(type: string, extra: object = {}): Promise<SinkMessage & Partial<SinkStats>> {
    return new Promise((resolve) => {
      this.replies.push(resolve);
      this.child.process.send({ type, ...extra });
    });
  }

  /** Zeroes the counters. With watch, each message's end of DATA is reported to nextMail(). */
  async reset(watch = false): Promise<void> {
    await this.request("reset", { watch });
    this.arrived = [];
  }

  async stats(): Promise<SinkStats> {
    return (await this.request("stats")) as unknown as SinkStats;
  }

  /** Waits until `count` messages arrived since the last reset; throws after `timeoutMs`. */
  async waitFor(count: number, timeoutMs: number): Promise<SinkStats> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const stats = await this.stats();
      if (stats.messages >= count) return stats;
      if (Date.now() > deadline)
        throw new Error(`the sink received ${stats.messages} of ${count} messages in ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The end-of-DATA time of the next message (watch mode); throws after `timeoutMs`. */
  nextMail(timeoutMs: number): Promise<number> {
    const early = this.arrived.shift();
    if (early !== undefined) return Promise.resolve(early);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.mailWaiters = this.mailWaiters.filter((w) => w !== waiter);
        reject(new Error(`no mail reached the sink within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (at: number) => {
        clearTimeout(timer);
        resolve(at);
      };
      this.mailWaiters.push(waiter);
    });
  }

  /** Stops the sink; returns its total CPU time (user + system), seconds. */
  async stop(): Promise<number> {
    if (!this.child.alive()) return 0;
    const stopped = this.request("stop");
    const reply = await Promise.race([stopped, this.child.exited.then(() => undefined)]);
    await stopChild(this.child);
    return reply?.cpu ? (reply.cpu.user + reply.cpu.system) / 1e6 : 0;
  }
}

/** CPU seconds (user + system) between two readings. */
export function cpuSeconds(before: NodeJS.CpuUsage, after: NodeJS.CpuUsage): number {
  return (after.user - before.user + after.system - before.system) / 1e6;
}
