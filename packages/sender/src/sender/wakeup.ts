/**
 * A sleep that ends early when woken. A wake while nobody sleeps is remembered, so a notification that
 * arrives during a claim is not lost.
 */
export class Wakeup {
  private pending = false;
  private resolveSleep?: () => void;

  wake(): void {
    if (this.resolveSleep) this.resolveSleep();
    else this.pending = true;
  }

  sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.resolveSleep = undefined;
        resolve();
      }
      this.resolveSleep = done;
    });
  }
}
