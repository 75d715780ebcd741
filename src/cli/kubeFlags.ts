/** Flag parsing shared by `skein agent` and `skein operator`: each returns undefined after printing why. */

export function parsePortFlag(command: string, flag: string, value: string): number | undefined {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`skein ${command}: ${flag} must be a port number (0-65535), got "${value}"\n`);
    return undefined;
  }
  return n;
}

/** A positive number of seconds, as milliseconds. */
export function parseSecondsFlag(command: string, flag: string, value: string): number | undefined {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 3600) {
    process.stderr.write(
      `skein ${command}: ${flag} must be a number of seconds in (0, 3600], got "${value}"\n`,
    );
    return undefined;
  }
  return Math.round(n * 1000);
}

/** Waits for SIGINT or SIGTERM. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}
