// Shared by the setup steps: messages, the cache location, running commands. Plain Node ESM, node:* only.

import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';

export const PREFIX = 'skein setup:';

/** Raised for failures with a message meant for the user; anything else is a bug and gets a stack. */
export class SetupError extends Error {}

export function say(message) {
  process.stdout.write(`${PREFIX} ${message}\n`);
}

/** `~/…` for paths under the home directory: shorter, and the same on every machine in the docs. */
export function pretty(p) {
  const home = os.homedir();
  return p === home || p.startsWith(home + path.sep) ? `~${p.slice(home.length)}` : p;
}

/** `$XDG_CACHE_HOME/skein` (the spec ignores a relative value), else `~/.cache/skein`. */
export function cacheRoot(env) {
  const xdg = env.XDG_CACHE_HOME;
  const base =
    xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'skein');
}

/** Runs a command with its output passed through; resolves on exit 0. */
export function run(cmd, args, env = process.env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env });
    child.on('error', (err) => reject(new SetupError(`cannot run ${cmd}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new SetupError(`${cmd} ${args.join(' ')} failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

/** True if a process with this pid exists (ours or not). */
export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}
