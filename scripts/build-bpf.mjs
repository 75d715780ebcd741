#!/usr/bin/env node
// Builds the eBPF datapath: `vmlinux.h` from this kernel's BTF (bpftool), every `bpf/*.bpf.c` into
// `dist/bpf/*.bpf.o` (clang, CO-RE), and the N-API addon over libbpf into
// `native/build/Release/skein_bpf.node` (node-gyp). Each output carries a `.inputs` stamp (a hash of
// everything it is built from), so a second run with nothing changed does nothing.
//
//   node scripts/build-bpf.mjs [all|bpf|native]    build (default: all)
//   node scripts/build-bpf.mjs --if-toolchain      build only if clang, libbpf-dev and bpftool are there
//                                                  (`npm run build`: `npm start` must not need them)
//   node scripts/build-bpf.mjs compile SRC OUT     compile one BPF C file with the same flags (tests)
//
// The toolchain comes from `node scripts/setup.mjs bpf` (apt). Plain Node ESM, node:* only.

import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const BPF_DIR = path.join(ROOT, 'bpf');
export const BPF_INCLUDE_DIR = path.join(BPF_DIR, 'include');
export const BPF_OUT_DIR = path.join(ROOT, 'dist', 'bpf');
/** Generated headers (vmlinux.h): build output, never committed. */
export const GEN_INCLUDE_DIR = path.join(BPF_OUT_DIR, 'include');
export const VMLINUX_H = path.join(GEN_INCLUDE_DIR, 'vmlinux.h');
export const KERNEL_BTF = '/sys/kernel/btf/vmlinux';
export const NATIVE_DIR = path.join(ROOT, 'native');
export const ADDON_PATH = path.join(NATIVE_DIR, 'build', 'Release', 'skein_bpf.node');
/** libbpf-dev's headers; the addon and the BPF programs (bpf_helpers.h) both need them. */
export const LIBBPF_HEADER = '/usr/include/bpf/libbpf.h';

/** Raised for failures with a message meant for the user (the setup step reports its message). */
export class BuildError extends Error {}

/** `__TARGET_ARCH_*` for CO-RE and bpf_tracing.h, from Node's architecture name. */
const TARGET_ARCH = {
  x64: 'x86',
  arm64: 'arm64',
  arm: 'arm',
  s390x: 's390',
  ppc64: 'powerpc',
  riscv64: 'riscv',
};

/** The clang flags every BPF object is built with. `-g` keeps BTF (CO-RE and the alignment test need it). */
export function clangFlags() {
  const arch = TARGET_ARCH[process.arch];
  if (arch === undefined) throw new BuildError(`no BPF target architecture known for ${process.arch}`);
  return [
    '-O2',
    '-g',
    '-target',
    'bpf',
    `-D__TARGET_ARCH_${arch}`,
    '-Wall',
    '-Wno-unused-function',
    '-I',
    BPF_INCLUDE_DIR,
    '-I',
    GEN_INCLUDE_DIR,
  ];
}

// --- finding the tools -----------------------------------------------------------------------------

/** Debian puts bpftool in /usr/sbin, which a non-root PATH often lacks. */
function searchPath() {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const d of ['/usr/local/sbin', '/usr/sbin', '/sbin']) if (!dirs.includes(d)) dirs.push(d);
  return dirs;
}

export function which(name) {
  for (const dir of searchPath()) {
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** `clang`, else the newest versioned `clang-N` (Debian installs both names with the `clang` package). */
export function findClang() {
  const plain = which('clang');
  if (plain !== undefined) return plain;
  for (let v = 21; v >= 14; v--) {
    const p = which(`clang-${v}`);
    if (p !== undefined) return p;
  }
  return undefined;
}

export function findBpftool() {
  return which('bpftool');
}

/** What is missing to build the datapath, as Debian package names (empty when everything is there). */
export function missingToolchain() {
  const missing = [];
  if (findClang() === undefined) missing.push('clang');
  if (which('llvm-strip') === undefined && which('llvm-objdump') === undefined) missing.push('llvm');
  if (!existsSync(LIBBPF_HEADER)) missing.push('libbpf-dev');
  if (findBpftool() === undefined) missing.push('bpftool');
  // node-gyp builds the addon with make and a C++ compiler.
  if (which('make') === undefined) missing.push('make');
  if (which('g++') === undefined && which('c++') === undefined) missing.push('g++');
  return missing;
}

function capture(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, ...options }, (err, stdout, stderr) => {
      if (err)
        reject(
          new BuildError(`${path.basename(cmd)} ${args.join(' ')} failed: ${stderr.trim() || err.message}`),
        );
      else resolve(stdout);
    });
  });
}

/** Runs a command with its output shown only if it fails (node-gyp is chatty). */
function runQuiet(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('error', (err) => reject(new BuildError(`cannot run ${cmd}: ${err.message}`)));
    child.on('exit', (code, signal) => {
      if (code === 0) resolve(out);
      else {
        const tail = out.trim().split('\n').slice(-40).join('\n');
        reject(
          new BuildError(
            `${path.basename(cmd)} ${args.join(' ')} failed (${signal ?? `exit code ${code}`}):\n${tail}`,
          ),
        );
      }
    });
  });
}

export async function toolVersions() {
  const clang = findClang();
  const bpftool = findBpftool();
  const clangVersion = clang ? /version (\S+)/.exec(await capture(clang, ['--version']))?.[1] : undefined;
  const bpftoolVersion = bpftool
    ? /v?(\d+\.\d+\.\d+)/.exec(await capture(bpftool, ['version']))?.[1]
    : undefined;
  let libbpfVersion;
  try {
    const h = await readFile('/usr/include/bpf/libbpf_version.h', 'utf8');
    libbpfVersion = `${/LIBBPF_MAJOR_VERSION (\d+)/.exec(h)?.[1]}.${/LIBBPF_MINOR_VERSION (\d+)/.exec(h)?.[1]}`;
  } catch {
    libbpfVersion = undefined;
  }
  return { clang, clangVersion, bpftool, bpftoolVersion, libbpfVersion };
}

// --- stamps ----------------------------------------------------------------------------------------

async function hashInputs(parts) {
  const h = createHash('sha256');
  for (const p of parts) {
    if (typeof p === 'string') h.update(`s:${p}\0`);
    else {
      h.update(`f:${path.relative(ROOT, p.file)}\0`);
      h.update(await readFile(p.file));
    }
  }
  return h.digest('hex');
}

async function upToDate(out, hash) {
  if (!existsSync(out)) return false;
  try {
    return (await readFile(`${out}.inputs`, 'utf8')).trim() === hash;
  } catch {
    return false;
  }
}

/** Writes through a private temporary file and a rename, so parallel builds never see half a file. */
async function publish(tmp, out, hash) {
  await rename(tmp, out);
  await writeFile(`${out}.inputs.${process.pid}`, `${hash}\n`);
  await rename(`${out}.inputs.${process.pid}`, `${out}.inputs`);
}

async function listFiles(dir, suffix) {
  if (!existsSync(dir)) return [];
  return (await readdir(dir))
    .filter((n) => n.endsWith(suffix))
    .sort()
    .map((n) => path.join(dir, n));
}

// --- the builds ------------------------------------------------------------------------------------

/** `vmlinux.h` from the running kernel's BTF. Returns true if it was (re)generated. */
export async function buildVmlinuxH() {
  if (!existsSync(KERNEL_BTF)) {
    throw new BuildError(
      `${KERNEL_BTF} does not exist: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF), which the eBPF datapath needs`,
    );
  }
  const bpftool = findBpftool();
  if (bpftool === undefined)
    throw new BuildError('bpftool is not installed (node scripts/setup.mjs bpf installs it)');
  const { bpftoolVersion } = await toolVersions();
  const hash = await hashInputs([`bpftool ${bpftoolVersion}`, { file: KERNEL_BTF }]);
  if (await upToDate(VMLINUX_H, hash)) return false;
  await mkdir(GEN_INCLUDE_DIR, { recursive: true });
  const text = await capture(bpftool, ['btf', 'dump', 'file', KERNEL_BTF, 'format', 'c']);
  const tmp = `${VMLINUX_H}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await publish(tmp, VMLINUX_H, hash);
  return true;
}

/** Compiles one BPF C file. `force` skips the stamp (tests compile fixtures into temporary directories). */
export async function compileBpf(src, out, { force = false } = {}) {
  const clang = findClang();
  if (clang === undefined)
    throw new BuildError('clang is not installed (node scripts/setup.mjs bpf installs it)');
  if (!existsSync(VMLINUX_H)) await buildVmlinuxH();
  const { clangVersion, libbpfVersion } = await toolVersions();
  const flags = clangFlags();
  const headers = await listFiles(BPF_INCLUDE_DIR, '.h');
  const hash = await hashInputs([
    `clang ${clangVersion} libbpf ${libbpfVersion} ${flags.join(' ')}`,
    { file: src },
    { file: `${VMLINUX_H}.inputs` },
    ...headers.map((file) => ({ file })),
  ]);
  if (!force && (await upToDate(out, hash))) return false;
  await mkdir(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    await capture(clang, [...flags, '-c', src, '-o', tmp]);
    await publish(tmp, out, hash);
  } finally {
    await rm(tmp, { force: true });
  }
  return true;
}

/** Every `bpf/*.bpf.c` into `dist/bpf/*.bpf.o`. Returns the names of the objects it rebuilt. */
export async function buildBpf() {
  const built = [];
  if (await buildVmlinuxH()) built.push('vmlinux.h');
  for (const src of await listFiles(BPF_DIR, '.bpf.c')) {
    const out = path.join(BPF_OUT_DIR, `${path.basename(src, '.c')}.o`);
    if (await compileBpf(src, out)) built.push(path.relative(ROOT, out));
  }
  return built;
}

/** node-gyp needs the Node headers; point it at the installed ones so it never downloads them. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return existsSync(path.join(prefix, 'include', 'node', 'node.h')) ? [`--nodedir=${prefix}`] : [];
}

/** The addon, with node-gyp. Returns true if it was rebuilt. */
export async function buildNative() {
  if (!existsSync(LIBBPF_HEADER)) {
    throw new BuildError(`${LIBBPF_HEADER} is missing: install libbpf-dev (node scripts/setup.mjs bpf does)`);
  }
  const require = createRequire(path.join(ROOT, 'package.json'));
  let gyp;
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js');
    require.resolve('node-addon-api');
  } catch {
    throw new BuildError('node-gyp or node-addon-api is not installed: run `npm install` first');
  }
  const { libbpfVersion } = await toolVersions();
  // The addon compiles the shared headers too (native/src/layout.cc), so they are inputs.
  const sources = [
    ...(await listFiles(path.join(NATIVE_DIR, 'src'), '')),
    ...(await listFiles(BPF_INCLUDE_DIR, '.h')),
  ];
  const hash = await hashInputs([
    `node ${process.versions.node} abi ${process.versions.modules} libbpf ${libbpfVersion}`,
    { file: path.join(NATIVE_DIR, 'binding.gyp') },
    { file: LIBBPF_HEADER },
    ...sources.map((file) => ({ file })),
  ]);
  if (await upToDate(ADDON_PATH, hash)) return false;
  await runQuiet(process.execPath, [gyp, 'rebuild', '--directory', NATIVE_DIR, ...nodedirArgs()], {
    env: { ...process.env, JOBS: 'max' },
  });
  // node-gyp wrote the file in place; stamp it.
  await writeFile(`${ADDON_PATH}.inputs`, `${hash}\n`);
  return true;
}

/** Builds what is asked; returns a summary of what was rebuilt (empty when everything was up to date). */
export async function build(what = 'all') {
  const built = [];
  if (what === 'all' || what === 'bpf') built.push(...(await buildBpf()));
  if ((what === 'all' || what === 'native') && (await buildNative()))
    built.push(path.relative(ROOT, ADDON_PATH));
  return built;
}

async function main(argv) {
  const prefix = 'skein build-bpf:';
  try {
    if (argv[0] === 'compile') {
      const [, src, out] = argv;
      if (src === undefined || out === undefined)
        throw new BuildError('usage: build-bpf.mjs compile SRC OUT');
      await compileBpf(path.resolve(src), path.resolve(out), { force: true });
      return 0;
    }
    const ifToolchain = argv.includes('--if-toolchain');
    const what = argv.find((a) => !a.startsWith('-')) ?? 'all';
    if (!['all', 'bpf', 'native'].includes(what))
      throw new BuildError(`unknown target ${what}: all, bpf or native`);
    const missing = missingToolchain();
    let skip;
    if (missing.length > 0) {
      skip = `it needs ${missing.join(', ')} to build; \`node scripts/setup.mjs bpf\` installs them`;
    } else if (what !== 'native' && !existsSync(KERNEL_BTF)) {
      skip = `this kernel has no BTF (${KERNEL_BTF}) to build vmlinux.h from`;
    }
    if (skip !== undefined) {
      if (!ifToolchain) throw new BuildError(`cannot build the eBPF datapath: ${skip}`);
      process.stdout.write(`${prefix} skipping the eBPF datapath (Skein runs without it): ${skip}\n`);
      return 0;
    }
    const started = Date.now();
    let built;
    try {
      built = await build(what);
    } catch (err) {
      // `npm run build` (and so `npm start`) must not fail over the optional datapath: one line says so.
      // `npm test` runs the bpf setup step next, which fails with the whole error.
      if (!ifToolchain) throw err;
      const first = String(err?.message ?? err).split('\n')[0];
      process.stdout.write(
        `${prefix} the eBPF datapath did not build (${first}); Skein runs without it; \`npm run build:bpf\` shows why\n`,
      );
      return 0;
    }
    if (built.length > 0) {
      process.stdout.write(
        `${prefix} built ${built.join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
      );
    }
    return 0;
  } catch (err) {
    process.stderr.write(
      `${prefix} ${err instanceof BuildError ? err.message : (err?.stack ?? String(err))}\n`,
    );
    return 1;
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
