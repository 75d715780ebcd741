// Installing Debian packages for a setup step, with apt-get. Shared by the steps that need system tools
// (the eBPF toolchain, iptables for the service-lb benchmark).

import { execFileSync, spawn } from 'node:child_process';
import { SetupError, say } from './common.mjs';

/** Runs apt-get quietly; resolves to its output, rejects with the output's tail. */
function aptGet(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn('apt-get', ['-o', 'DPkg::Lock::Timeout=120', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', (err) => reject(new SetupError(`cannot run apt-get: ${err.message}`)));
    child.on('exit', (code) => {
      if (code === 0) resolve(out);
      else
        reject(
          new SetupError(
            `apt-get ${args.join(' ')} failed:\n${out.trim().split('\n').slice(-15).join('\n')}`,
          ),
        );
    });
  });
}

function hasAptGet() {
  try {
    execFileSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * Installs `packages` with apt-get, saying why (`purpose`), or throws a SetupError telling the user how
 * to do it by hand and which command (`rerun`) to run afterwards.
 */
export async function aptInstall(packages, env, purpose, rerun) {
  const list = packages.join(' ');
  const manual = `install ${list} yourself (Debian/Ubuntu: apt-get install ${list}), then run \`${rerun}\` again`;
  if (process.platform !== 'linux') throw new SetupError(`${list}: Linux only`);
  if (!hasAptGet()) throw new SetupError(`apt-get is not available; ${manual}`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new SetupError(`installing ${list} with apt-get needs root; ${manual}`);
  }
  say(`installing ${list} with apt-get (${purpose}) …`);
  const install = ['install', '-y', '-q', '--no-install-recommends', ...packages];
  try {
    await aptGet(install, env);
  } catch (first) {
    // Usually an empty or stale package index (containers ship without one): refresh it once and retry.
    say('apt-get install failed; running apt-get update once and retrying …');
    try {
      await aptGet(['update', '-q'], env);
      await aptGet(install, env);
    } catch (err) {
      throw new SetupError(`${err.message}\n(first attempt: ${first.message.split('\n')[0]})\n${manual}`);
    }
  }
}
