import { FlagError } from './flags.js';

/** Flag checks shared by `skein agent` and `skein operator` (flags.ts has the ones `skein up` shares too). */

/** A positive number of seconds, as milliseconds. */
export function secondsFlag(flag: string, value: string): number {
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(n > 0 && n <= 3600)) {
    throw new FlagError(`Cannot use ${flag} "${value}": it must be a number of seconds in (0, 3600]`);
  }
  return Math.round(n * 1000);
}

/** A namespace or object name (DNS-1123 label), as the API server checks it. */
export function nameFlag(flag: string, value: string): string {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value)) {
    throw new FlagError(
      `Cannot use ${flag} "${value}": it must be a DNS-1123 label (a-z, 0-9, '-'; at most 63)`,
    );
  }
  return value;
}

/** `true` or `false`. */
export function booleanFlag(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new FlagError(`Cannot use ${flag} "${value}": it takes true or false`);
}

/** An absolute path, as the settings it overrides take it. */
export function pathFlag(flag: string, value: string): string {
  if (!value.startsWith('/'))
    throw new FlagError(`Cannot use ${flag} "${value}": it must be an absolute path`);
  return value.replace(/\/+$/, '') || '/';
}

/** Waits for SIGINT or SIGTERM. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}
