// The agent container's capabilities, as the chart renders them, on the real kernel: a process that
// holds exactly those (root, everything else out of its bounding set, as in the container) loads every
// BPF object Skein ships and attaches its cgroup and tc programs; without any one of them it cannot.
// So each capability is needed and together they suffice. Runs in a network namespace, a cgroup and a
// bpffs of its own, all removed afterwards.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSupport } from '../../src/datapath/addon.js';
import { cgroup2Mount } from '../../src/datapath/cgroup.js';
import { container, only, parseManifests, podSpec, ROOT, render } from './chart.js';

const FIXTURE = path.join(import.meta.dirname, 'fixtures/datapath-with-caps.mjs');
const support = checkSupport();
const describeKernel = support.ok ? describe : describe.skip;
const suite = `the agent's capabilities from the chart, on the real kernel${support.ok ? '' : ` (skipped: ${support.reason})`}`;

/** Linux capability numbers (linux/capability.h), for reading CapEff. */
const CAP_NUMBERS: Readonly<Record<string, number>> = {
  NET_BIND_SERVICE: 10,
  NET_ADMIN: 12,
  NET_RAW: 13,
  SYS_ADMIN: 21,
  SYS_RESOURCE: 24,
  PERFMON: 38,
  BPF: 39,
};

function exec(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

interface Outcome {
  readonly ok: boolean;
  readonly capEff: string;
  readonly steps: readonly string[];
  readonly error?: string;
}

describeKernel(suite, () => {
  const tag = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const netns = `skein-caps-${tag}`;
  let bpffs: string | undefined;
  let cgroup: string | undefined;
  let objects: string[];
  let chartCaps: string[];

  beforeAll(async () => {
    const agent = container(podSpec(only(parseManifests(await render()), 'DaemonSet')), 'agent');
    chartCaps = [...(agent.securityContext?.capabilities?.add ?? [])];
    const dist = path.join(ROOT, 'dist/bpf');
    objects = (await readdir(dist))
      .filter((f) => f.endsWith('.bpf.o'))
      .sort()
      .map((f) => path.join(dist, f));
    await exec('ip', ['netns', 'add', netns]);
    await exec('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    bpffs = await mkdtemp(path.join(os.tmpdir(), 'skein-caps-bpffs-'));
    await exec('mount', ['-t', 'bpf', 'bpf', bpffs]);
    const root = cgroup2Mount();
    if (root === undefined) throw new Error('no cgroup v2 hierarchy is mounted');
    cgroup = path.join(root, `skein-caps-${tag}`);
    await mkdir(cgroup);
  });

  afterAll(async () => {
    await exec('ip', ['netns', 'del', netns]).catch(() => undefined);
    const mount = bpffs;
    if (mount !== undefined) {
      await exec('umount', [mount]).catch(() => exec('umount', ['-l', mount]));
      await rm(mount, { recursive: true, force: true });
    }
    if (cgroup !== undefined) await rmdir(cgroup);
  });

  let run = 0;
  async function withCaps(caps: readonly string[]): Promise<Outcome> {
    run += 1;
    const bounding = ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
    const out = await exec('nsenter', [
      `--net=/run/netns/${netns}`,
      '--',
      'setpriv',
      `--bounding-set=${bounding}`,
      '--inh-caps=-all',
      '--',
      process.execPath,
      FIXTURE,
      path.join(bpffs ?? '', `run${run}`),
      cgroup ?? '',
      ...objects,
    ]);
    return JSON.parse(out.trim()) as Outcome;
  }

  const capsOf = (capEff: string): string[] =>
    Object.entries(CAP_NUMBERS)
      .filter(([, n]) => (BigInt(`0x${capEff}`) >> BigInt(n)) & 1n)
      .map(([name]) => name)
      .sort();

  it('load and attach the whole datapath with exactly the chart capabilities', async () => {
    expect(chartCaps).toEqual(['BPF', 'NET_ADMIN', 'PERFMON']);
    expect(objects.map((o) => path.basename(o))).toContain('lb.bpf.o');
    const r = await withCaps(chartCaps);
    // The process held those and no others (no SYS_ADMIN), as the container will.
    expect(BigInt(`0x${r.capEff}`)).toBe(
      chartCaps.reduce((m, c) => m | (1n << BigInt(CAP_NUMBERS[c] ?? 63)), 0n),
    );
    expect(r.error).toBeUndefined();
    expect(r.ok).toBe(true);
    expect(r.steps).toEqual(
      expect.arrayContaining([
        'load lb',
        'attach skein_connect4 to the cgroup',
        'attach skein_tc_flow with tcx',
      ]),
    );
  });

  for (const missing of ['BPF', 'NET_ADMIN', 'PERFMON']) {
    it(`cannot load the datapath without ${missing}`, async () => {
      const r = await withCaps(chartCaps.filter((c) => c !== missing));
      expect(capsOf(r.capEff)).not.toContain(missing);
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/^SKEIN_BPF_LOAD_FAILED: /);
      expect(r.steps).not.toContain('load lb');
    });
  }
});
