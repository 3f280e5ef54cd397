/** Calls fn until it succeeds, with capped exponential backoff, giving up (rethrowing) after `until`. */
export async function retrying<T>(
  fn: () => Promise<T>,
  options: { until: number; onRetry?: (error: Error) => void },
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      const delay = Math.min(10_000, 200 * 2 ** Math.min(attempt, 6));
      if (Date.now() + delay > options.until) throw error;
      options.onRetry?.(error as Error);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
