// The bpf setup step (scripts/setup/bpf.mjs) as `npm test` runs it: after pretest built everything, a
// second run installs and builds nothing, says so in one line, and is quick.

import path from 'node:path';
import { expect, it } from 'vitest';
import { describeKernel, exec, kernelSuite, ROOT } from './helpers.js';

describeKernel(kernelSuite('scripts/setup.mjs bpf'), () => {
  it('is a fast no-op with one line once everything is built', async () => {
    const out = await exec(process.execPath, [path.join(ROOT, 'scripts/setup.mjs'), 'bpf'], 120_000);
    expect(out.trim().split('\n')).toHaveLength(1);
    expect(out).toMatch(
      /^skein setup: eBPF datapath(?: up to date|: built .*) \(clang [\d.]+, libbpf [\d.]+, bpftool [\d.]+/,
    );
    const again = Date.now();
    const second = await exec(process.execPath, [path.join(ROOT, 'scripts/setup.mjs'), 'bpf'], 60_000);
    expect(second).toMatch(/^skein setup: eBPF datapath up to date \(clang .*\)\n$/);
    expect(Date.now() - again).toBeLessThan(5_000);
  });

  it('lets `npm run build` build the datapath quietly when it is up to date', async () => {
    const out = await exec(
      process.execPath,
      [path.join(ROOT, 'scripts/build-bpf.mjs'), '--if-toolchain'],
      120_000,
    );
    expect(out).toBe('');
  });
});
