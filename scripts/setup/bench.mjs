// Setup step: the benchmarks' tools. iptables (apt) for the kube-proxy-style baseline of
// bench/service-lb.ts, when this machine can run it (root). fortio (fortio.org/fortio) is a constant-rate HTTP/1.1 and
// gRPC load generator with latency percentiles, and a server for both; bench/request-latency.ts drives
// it. Built from its Go module, every dependency pinned by hash in build/bench/fortio/go.{mod,sum}, into
// the cache. Later fortio releases need a module the Go proxy here does not serve (grol.io/grol).

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { aptInstall } from './apt.mjs';
import { cacheRoot, pretty, run, SetupError, say } from './common.mjs';

export const FORTIO_VERSION = '1.66.0';

const BUILD_DIR = fileURLToPath(new URL('../../build/bench/fortio', import.meta.url));

/** `~/.cache/skein/bin/fortio-v<version>`. */
export function fortioPath(env) {
  return path.join(cacheRoot(env), 'bin', `fortio-v${FORTIO_VERSION}`);
}

function version(bin, env) {
  return new Promise((resolve) => {
    execFile(bin, ['version'], { env, timeout: 10_000 }, (err, stdout) => {
      resolve(err ? undefined : stdout.trim().split(/\s/)[0]);
    });
  });
}

function onPath(cmd) {
  return ['/usr/sbin', '/sbin', ...(process.env.PATH ?? '').split(':')].some(
    (d) => d !== '' && existsSync(path.join(d, cmd)),
  );
}

/** iptables for the benchmark's baseline; only where it could run (root on Linux), else the bench skips that column. */
async function installIptables(env) {
  if (onPath('iptables-restore')) return;
  const root = process.platform === 'linux' && typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) return;
  await aptInstall(
    ['iptables'],
    env,
    'the service-lb benchmark compares with a kube-proxy iptables chain',
    'node scripts/setup.mjs bench',
  );
}

async function installBenchTools({ env }) {
  await installIptables(env);
  await installFortio(env);
}

async function installFortio(env) {
  const bin = fortioPath(env);
  if (existsSync(bin) && (await version(bin, env)) === FORTIO_VERSION) {
    say(`fortio ${FORTIO_VERSION} (benchmark load generator) already built at ${pretty(bin)}`);
    return;
  }
  say(
    `building fortio ${FORTIO_VERSION} from the Go module fortio.org/fortio (the benchmarks' load generator; once, ~1 min) into ${pretty(bin)} …`,
  );
  const started = Date.now();
  await mkdir(path.dirname(bin), { recursive: true });
  const tmp = path.join(path.dirname(bin), `.${path.basename(bin)}.partial-${process.pid}`);
  const goEnv = { ...env, CGO_ENABLED: '0', GOWORK: 'off' };
  const args = ['build', '-mod=readonly', '-trimpath', '-buildvcs=false', '-ldflags=-s -w', '-o', tmp];
  try {
    await run('go', ['-C', BUILD_DIR, ...args, 'fortio.org/fortio'], goEnv);
    const got = await version(tmp, env);
    if (got !== FORTIO_VERSION)
      throw new SetupError(`the freshly built fortio reports ${got}, not ${FORTIO_VERSION}`);
    await rename(tmp, bin);
  } finally {
    await rm(tmp, { force: true });
  }
  say(`built fortio ${FORTIO_VERSION} in ${Math.round((Date.now() - started) / 1000)} s`);
}

export const benchStep = {
  name: 'bench',
  describe: `fortio ${FORTIO_VERSION} (built from its Go module; constant-rate load generator) and iptables (apt) for the benchmarks`,
  run: installBenchTools,
};
