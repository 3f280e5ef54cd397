/**
 * At most `size` holders at once; the rest wait in order. Used per SMTP account so that a message only
 * takes a connection's turn (and has its lease checked) when a pooled connection is free, instead of
 * waiting inside nodemailer's queue where no check can reach it.
 */
export class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.used >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.used++;
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.used--;
    }
  }
}
