// A program the verifier refuses: the load fails with SKEIN_BPF_LOAD_FAILED, the kernel's errno, the
// program's name and the verifier log that says why.

import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { BpfObject } from '../../src/datapath/bpfObject.js';
import { DatapathError } from '../../src/datapath/errors.js';
import {
  compileBpf,
  describeKernel,
  FIXTURES,
  kernelSuite,
  type Made,
  mountBpffs,
  removeAll,
  tempDir,
} from './helpers.js';

describeKernel(kernelSuite('verifier failures'), () => {
  let dir: Made | undefined;
  let bpffs: Made | undefined;
  let bad = '';

  beforeAll(async () => {
    dir = await tempDir('skein-verifier-');
    bpffs = await mountBpffs();
    bad = path.join(dir.path, 'bad.bpf.o');
    await compileBpf(path.join(FIXTURES, 'bad.bpf.c'), bad);
  });
  afterAll(async () => {
    await removeAll([dir, bpffs]);
  });

  it('fails the load with errno, the program and the verifier log', () => {
    const obj = BpfObject.open(bad, { pinRoot: bpffs?.path ?? '' });
    let error: unknown;
    try {
      obj.load();
    } catch (err) {
      error = err;
    } finally {
      obj.close();
    }
    expect(error).toBeInstanceOf(DatapathError);
    const e = error as DatapathError;
    expect(e.code).toBe('SKEIN_BPF_LOAD_FAILED');
    expect(e.errno).toBe(13); // EACCES: the verifier said no
    expect(e.program).toBe('skein_bad_parse');
    expect(e.message).toBe(
      `SKEIN_BPF_LOAD_FAILED: cannot load ${bad}: program skein_bad_parse was rejected by the verifier: Permission denied (errno 13)`,
    );
    // The verifier's own words, with the instruction it stopped at.
    expect(e.verifierLog).toMatch(/invalid access to packet/);
    expect(e.verifierLog).toMatch(/processed \d+ insns/);
    expect(e.libbpfLog).toContain("prog 'skein_bad_parse': BPF program load failed");
  });

  it('leaves the object closed after a failed load', () => {
    const obj = BpfObject.open(bad, { pinRoot: bpffs?.path ?? '' });
    expect(() => obj.load()).toThrow(/SKEIN_BPF_LOAD_FAILED/);
    expect(() => obj.program('skein_bad_parse')).toThrow(/SKEIN_BPF_CLOSED/);
    obj.close();
  });
});
