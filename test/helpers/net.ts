import { randomInt } from 'node:crypto';

/**
 * A random loopback address in 127.0.0.0/8 (never 127.0.0.1). Tests bind their listeners on their own
 * address, so parallel test files never race for a port, and addresses other than 127.0.0.1 are
 * exercised on every run.
 */
export function randomLoopback(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
}

/** Polls `check` until it returns a value other than undefined, at most `timeoutMs`. Bounded by design. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
  intervalMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastError !== undefined ? ` (last error: ${String(lastError)})` : ''}`,
  );
}
