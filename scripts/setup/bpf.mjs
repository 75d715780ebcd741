// Setup step: the eBPF datapath. Installs its build toolchain with apt when missing (clang, llvm,
// libbpf-dev, bpftool), then builds vmlinux.h from this kernel's BTF, bpf/*.bpf.c into dist/bpf/ and the
// libbpf addon into native/build/ (scripts/build-bpf.mjs does the building; see there).
//
// `npm test` runs this step (the kernel tests need it); `npm start` does not: standalone L7 mode works
// without the datapath.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { BuildError, build, KERNEL_BTF, missingToolchain, ROOT, toolVersions } from '../build-bpf.mjs';
import { aptInstall } from './apt.mjs';
import { SetupError, say } from './common.mjs';

/** Why this machine cannot load BPF programs at all (then the kernel tests skip), or undefined. */
function cannotLoadBpf() {
  if (process.platform !== 'linux') return 'it is not Linux';
  if (!existsSync(KERNEL_BTF)) return `this kernel has no BTF (${KERNEL_BTF} is missing)`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'this is not root';
  return undefined;
}

async function setupBpf({ env }) {
  const missing = missingToolchain();
  const unable = cannotLoadBpf();
  // A machine that cannot load BPF skips its tests; building for it would only fail (no BTF means no
  // vmlinux.h; not root means no apt). Say so once and leave the rest of the setup alone.
  if (unable !== undefined && (missing.length > 0 || !existsSync(KERNEL_BTF))) {
    say(
      `skipping the eBPF datapath: ${unable}; Skein runs without it (standalone L7) and its kernel tests skip`,
    );
    return;
  }
  if (missing.length > 0) {
    await aptInstall(missing, env, 'the eBPF datapath is built with them', 'node scripts/setup.mjs bpf');
    const still = missingToolchain();
    if (still.length > 0)
      throw new SetupError(
        `apt-get installed ${missing.join(' ')}, but ${still.join(', ')} is still missing`,
      );
  }
  const v = await toolVersions();
  const tools = `clang ${v.clangVersion}, libbpf ${v.libbpfVersion}, bpftool ${v.bpftoolVersion}`;
  const started = Date.now();
  let built;
  try {
    built = await build('all');
  } catch (err) {
    throw new SetupError(err instanceof BuildError ? err.message : (err?.stack ?? String(err)));
  }
  const outputs = `dist/bpf/ and ${path.relative(ROOT, path.join(ROOT, 'native/build/Release/skein_bpf.node'))}`;
  if (built.length === 0) {
    say(`eBPF datapath up to date (${tools}; ${outputs})`);
  } else {
    say(
      `eBPF datapath: built ${built.join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)}s (${tools})`,
    );
  }
}

export const bpfStep = {
  name: 'bpf',
  describe: 'eBPF datapath: clang, libbpf-dev, bpftool (apt), then dist/bpf/*.bpf.o and the libbpf addon',
  run: setupBpf,
};
