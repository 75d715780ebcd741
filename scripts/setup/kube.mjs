// Setup step: the Kubernetes test binaries (kube-apiserver, etcd, helm) built from their Go modules, and
// the Gateway API CRDs taken from the Gateway API Go module, into the cache. Tests run a real API server
// with them (test/harness/kube.ts).
//
// The versions below are the source of truth. build/kube/<tool>/go.mod and go.sum pin each build
// (every dependency, by hash); `node scripts/setup/kube.mjs pin` regenerates them from these constants
// after a version change. test/harness/kubeBinaries.ts holds the same constants, and a test checks that
// they agree.

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive, cacheRoot, pretty, SetupError, say } from './common.mjs';

export const KUBERNETES_VERSION = '1.37.2';
export const ETCD_VERSION = '3.7.3';
export const HELM_VERSION = '3.22.0';
export const GATEWAY_API_VERSION = '1.6.3';

/** build/kube/ in this checkout: one Go module per tool, holding only go.mod and go.sum. */
export const BUILD_DIR = fileURLToPath(new URL('../../build/kube', import.meta.url));

// Kubernetes reads its version from variables that its release scripts set at link time
// (hack/lib/version.sh); without them kube-apiserver reports v0.0.0-master, which clients that compare
// server versions (helm's kubeVersion, for one) reject.
const kubeVersionFlags = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => [
  `-X ${pkg}.gitVersion=v${KUBERNETES_VERSION}`,
  `-X ${pkg}.gitMajor=${KUBERNETES_VERSION.split('.')[0]}`,
  `-X ${pkg}.gitMinor=${KUBERNETES_VERSION.split('.')[1]}`,
  `-X ${pkg}.gitTreeState=clean`,
]);

/**
 * The binaries, in build order. `module` is the Go module required by build/kube/<dir>/go.mod, `pkg` the
 * main package built from it; `minutes` is roughly how long a first build takes on 2 cores.
 */
const TOOLS = [
  {
    name: 'etcd',
    version: ETCD_VERSION,
    dir: 'etcd',
    module: 'go.etcd.io/etcd/server/v3',
    // The server module's root package is etcd's main (a wrapper around etcdmain).
    pkg: 'go.etcd.io/etcd/server/v3',
    ldflags: [],
    versionArgs: ['--version'],
    versionPattern: /^etcd Version: (\S+)$/m,
    minutes: 1,
  },
  {
    name: 'kube-apiserver',
    version: KUBERNETES_VERSION,
    dir: 'apiserver',
    module: 'k8s.io/kubernetes',
    pkg: 'k8s.io/kubernetes/cmd/kube-apiserver',
    ldflags: kubeVersionFlags,
    versionArgs: ['--version'],
    versionPattern: /^Kubernetes v(\S+)$/m,
    minutes: 7,
  },
  {
    name: 'helm',
    version: HELM_VERSION,
    dir: 'helm',
    module: 'helm.sh/helm/v3',
    pkg: 'helm.sh/helm/v3/cmd/helm',
    ldflags: [`-X helm.sh/helm/v3/internal/version.version=v${HELM_VERSION}`],
    versionArgs: ['version', '--short'],
    versionPattern: /^v(\d+\.\d+\.\d+)/m,
    minutes: 2,
  },
];

const GATEWAY_API = { dir: 'gateway-api', module: 'sigs.k8s.io/gateway-api', version: GATEWAY_API_VERSION };
/** The channels copied out of the module's config/crd/; experimental is a superset of standard. */
const CRD_CHANNELS = ['standard', 'experimental'];

/** `~/.cache/skein/bin/<name>-v<version>`: a new version never overwrites the binary an old checkout uses. */
export function kubeBinaryPath(env, name) {
  const tool = TOOLS.find((t) => t.name === name);
  if (tool === undefined) throw new Error(`unknown Kubernetes test binary ${name}`);
  return path.join(cacheRoot(env), 'bin', `${tool.name}-v${tool.version}`);
}

/** `~/.cache/skein/gateway-api/v<version>/`, holding `standard/` and `experimental/`. */
export function gatewayApiCrdDir(env) {
  return path.join(cacheRoot(env), 'gateway-api', `v${GATEWAY_API_VERSION}`);
}

/** Runs a command and resolves with its stdout; rejects with the first line of its error and its stderr. */
function capture(cmd, args, { cwd, env, timeout = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env, timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const why = err.code === 'ENOENT' ? 'not found' : err.message.split('\n')[0];
        reject(new Error(`${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** Runs a command in `cwd` with its output passed through; resolves on exit 0. */
function runIn(cwd, cmd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', (err) => reject(new SetupError(`cannot run ${cmd}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve();
      else reject(new SetupError(`${cmd} ${args.join(' ')} failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

/** The version a built binary reports, or throws with the reason it did not run. */
async function binaryVersion(tool, bin, env) {
  const stdout = await capture(bin, tool.versionArgs, { env });
  const m = tool.versionPattern.exec(stdout);
  if (m === null || m[1] === undefined)
    throw new Error(`unexpected version output: ${JSON.stringify(stdout.trim())}`);
  return m[1];
}

/** True when the binary exists and reports the pinned version; says why not otherwise. */
async function binaryIsCurrent(tool, bin, env) {
  if (!existsSync(bin)) return false;
  try {
    const version = await binaryVersion(tool, bin, env);
    if (version === tool.version) return true;
    say(`${pretty(bin)} reports version ${version}, not ${tool.version}; rebuilding`);
  } catch (err) {
    say(`${pretty(bin)} does not run (${err.message}); rebuilding`);
  }
  return false;
}

function crdsArePresent(env) {
  const dir = gatewayApiCrdDir(env);
  return CRD_CHANNELS.every((c) =>
    existsSync(path.join(dir, c, 'gateway.networking.k8s.io_httproutes.yaml')),
  );
}

/** The environment for `go`: no cgo (static binaries, no C toolchain needed), no go.work from above. */
function goEnv(env) {
  return { ...env, CGO_ENABLED: '0', GOWORK: 'off' };
}

async function checkGo(env) {
  try {
    const out = await capture('go', ['env', 'GOVERSION'], { env: goEnv(env) });
    return out.trim();
  } catch (err) {
    throw new SetupError(
      `building the Kubernetes test binaries needs Go 1.26 or newer with access to the Go module proxy (go: ${err.message})`,
    );
  }
}

/** Fails when build/kube/<dir>/go.mod does not require `module` at `version` (someone changed only one). */
async function checkPin(dir, module, version) {
  const file = path.join(BUILD_DIR, dir, 'go.mod');
  const text = await readFile(file, 'utf8').catch((err) => {
    throw new SetupError(`cannot read ${file}: ${err.message}`);
  });
  const escaped = module.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const m = new RegExp(`^\\s*(?:require\\s+)?${escaped} (v\\S+)`, 'm').exec(text);
  if (m?.[1] !== `v${version}`) {
    throw new SetupError(
      `${path.relative(process.cwd(), file)} pins ${module} ${m?.[1] ?? '(nothing)'}, but scripts/setup/kube.mjs says v${version}; run \`node scripts/setup/kube.mjs pin\` to regenerate build/kube/`,
    );
  }
}

/** Removes `.<name>.partial-<pid>` files and directories whose writer is no longer running. */
async function removeAbandoned(parent) {
  for (const name of await readdir(parent).catch(() => [])) {
    const m = /^\..+\.partial-(\d+)$/.exec(name);
    if (m !== null && !alive(Number(m[1])))
      await rm(path.join(parent, name), { recursive: true, force: true });
  }
}

async function buildTool(tool, env) {
  const bin = kubeBinaryPath(env, tool.name);
  await checkPin(tool.dir, tool.module, tool.version);
  say(
    `building ${tool.name} v${tool.version} from the Go module ${tool.module} (once, ~${tool.minutes} min on 2 cores) into ${pretty(bin)} …`,
  );
  const started = Date.now();
  await mkdir(path.dirname(bin), { recursive: true });
  await removeAbandoned(path.dirname(bin));
  // Built beside the final name and renamed into place: an interrupted build never leaves a half binary.
  const tmp = path.join(path.dirname(bin), `.${path.basename(bin)}.partial-${process.pid}`);
  try {
    await runIn(
      path.join(BUILD_DIR, tool.dir),
      'go',
      [
        'build',
        '-mod=readonly',
        '-trimpath',
        '-buildvcs=false',
        `-ldflags=${['-s', '-w', ...tool.ldflags].join(' ')}`,
        '-o',
        tmp,
        tool.pkg,
      ],
      goEnv(env),
    );
    const version = await binaryVersion(tool, tmp, env).catch((err) => {
      throw new SetupError(`the freshly built ${tool.name} does not run: ${err.message}`);
    });
    if (version !== tool.version) {
      throw new SetupError(
        `the freshly built ${tool.name} reports version ${version}, expected ${tool.version}`,
      );
    }
    await rename(tmp, bin);
  } finally {
    await rm(tmp, { force: true });
  }
  const size = (await stat(bin)).size / (1 << 20);
  say(
    `built ${tool.name} v${tool.version} in ${Math.round((Date.now() - started) / 1000)} s (${size.toFixed(0)} MiB)`,
  );
}

async function extractCrds(env) {
  await checkPin(GATEWAY_API.dir, GATEWAY_API.module, GATEWAY_API.version);
  const dest = gatewayApiCrdDir(env);
  say(
    `copying the Gateway API v${GATEWAY_API.version} CRDs from the Go module ${GATEWAY_API.module} into ${pretty(dest)} …`,
  );
  // `go mod download` checks the module zip against go.sum and reports where it unpacked it.
  let info;
  try {
    const out = await capture('go', ['mod', 'download', '-json', GATEWAY_API.module], {
      cwd: path.join(BUILD_DIR, GATEWAY_API.dir),
      env: goEnv(env),
      timeout: 300_000,
    });
    info = JSON.parse(out);
  } catch (err) {
    throw new SetupError(`cannot download ${GATEWAY_API.module}@v${GATEWAY_API.version}: ${err.message}`);
  }
  if (info.Version !== `v${GATEWAY_API.version}` || typeof info.Dir !== 'string') {
    throw new SetupError(`go mod download returned ${JSON.stringify(info)}`);
  }
  const parent = path.dirname(dest);
  await mkdir(parent, { recursive: true });
  await removeAbandoned(parent);
  const tmp = path.join(parent, `.${path.basename(dest)}.partial-${process.pid}`);
  await rm(tmp, { recursive: true, force: true });
  try {
    for (const channel of CRD_CHANNELS) {
      const from = path.join(info.Dir, 'config', 'crd', channel);
      const files = (await readdir(from)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
      if (files.length === 0) throw new SetupError(`no CRDs in ${from}`);
      await mkdir(path.join(tmp, channel), { recursive: true });
      for (const f of files) {
        // The module cache is read-only; the copies need not be.
        await copyFile(path.join(from, f), path.join(tmp, channel, f));
        await chmod(path.join(tmp, channel, f), 0o644);
      }
    }
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function installKube({ env }) {
  const stale = [];
  for (const tool of TOOLS) {
    if (!(await binaryIsCurrent(tool, kubeBinaryPath(env, tool.name), env))) stale.push(tool);
  }
  const crds = crdsArePresent(env);
  if (stale.length === 0 && crds) {
    say(
      `Kubernetes test binaries already built in ${pretty(path.join(cacheRoot(env), 'bin'))}: kube-apiserver v${KUBERNETES_VERSION}, etcd v${ETCD_VERSION}, helm v${HELM_VERSION}; Gateway API v${GATEWAY_API_VERSION} CRDs`,
    );
    return;
  }
  say(`Go ${await checkGo(env)}`);
  for (const tool of stale) await buildTool(tool, env);
  if (!crds) await extractCrds(env);
  say(`Kubernetes test binaries ready in ${pretty(path.join(cacheRoot(env), 'bin'))}`);
}

export const kubeStep = {
  name: 'kube',
  describe: `kube-apiserver v${KUBERNETES_VERSION}, etcd v${ETCD_VERSION}, helm v${HELM_VERSION} (built from Go modules), Gateway API v${GATEWAY_API_VERSION} CRDs`,
  run: installKube,
};

// ---- `node scripts/setup/kube.mjs pin`: regenerate build/kube/ from the constants above ----------------

const HEADER = (what) =>
  `// Pins the build of ${what} for Skein's Kubernetes tests; scripts/setup/kube.mjs builds from here.\n// Generated by \`node scripts/setup/kube.mjs pin\` from the versions in that file: do not edit by hand.\n\n`;

/**
 * k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, …) at v0.0.0 and replaces
 * them with ./staging/… directories that its module zip does not carry. A consumer replaces each with
 * the published v0.<minor>.<patch> instead; the list comes from the module's own go.mod.
 */
async function stagingReplaces(env) {
  const out = await capture('go', ['mod', 'download', '-json', `k8s.io/kubernetes@v${KUBERNETES_VERSION}`], {
    env: goEnv(env),
    timeout: 600_000,
  });
  const { GoMod } = JSON.parse(out);
  const text = await readFile(GoMod, 'utf8');
  const staging = [...text.matchAll(/^\s*(k8s\.io\/\S+) => \.\/staging\/src\/\S+$/gm)].map((m) => m[1]);
  if (staging.length === 0) throw new SetupError(`no staging replace directives in ${GoMod}`);
  const [, minor, patch] = KUBERNETES_VERSION.split('.');
  return staging.map((mod) => `\t${mod} => ${mod} v0.${minor}.${patch}`);
}

async function pin() {
  const env = process.env;
  const goMods = {
    etcd: `module skein/build/kube/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v${ETCD_VERSION}\n\ntool go.etcd.io/etcd/server/v3\n`,
    apiserver: `module skein/build/kube/apiserver\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v${KUBERNETES_VERSION}\n\ntool k8s.io/kubernetes/cmd/kube-apiserver\n\nreplace (\n${(await stagingReplaces(env)).join('\n')}\n)\n`,
    helm: `module skein/build/kube/helm\n\ngo 1.26.0\n\nrequire helm.sh/helm/v3 v${HELM_VERSION}\n\ntool helm.sh/helm/v3/cmd/helm\n`,
    'gateway-api': `module skein/build/kube/gateway-api\n\ngo 1.26.0\n\nrequire sigs.k8s.io/gateway-api v${GATEWAY_API_VERSION}\n`,
  };
  const what = {
    etcd: `etcd v${ETCD_VERSION}`,
    apiserver: `kube-apiserver v${KUBERNETES_VERSION}`,
    helm: `helm v${HELM_VERSION}`,
    'gateway-api': `the Gateway API v${GATEWAY_API_VERSION} CRDs (copied, not built)`,
  };
  for (const [dir, body] of Object.entries(goMods)) {
    const cwd = path.join(BUILD_DIR, dir);
    await mkdir(cwd, { recursive: true });
    await writeFile(path.join(cwd, 'go.mod'), HEADER(what[dir]) + body);
    await rm(path.join(cwd, 'go.sum'), { force: true });
    say(`pinning ${what[dir]} in ${path.relative(process.cwd(), cwd)}/ …`);
    // tidy keeps the tool packages' dependencies; the gateway-api module has none we build, so only its
    // own hashes are recorded (by `go mod download`).
    if (dir === 'gateway-api') await runIn(cwd, 'go', ['mod', 'download', GATEWAY_API.module], goEnv(env));
    else await runIn(cwd, 'go', ['mod', 'tidy'], goEnv(env));
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [command] = process.argv.slice(2);
  if (command !== 'pin') {
    process.stderr.write(
      'usage: node scripts/setup/kube.mjs pin   (regenerates build/kube/ from the pinned versions)\n',
    );
    process.exitCode = 2;
  } else {
    try {
      await pin();
    } catch (err) {
      process.stderr.write(
        `skein setup: pin failed: ${err instanceof SetupError ? err.message : (err?.stack ?? err)}\n`,
      );
      process.exitCode = 1;
    }
  }
}
