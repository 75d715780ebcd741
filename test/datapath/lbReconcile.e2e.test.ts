// IR → map diffs through the kernel: a raw tracepoint program (fixtures/count-map-writes.bpf.c) counts,
// at syscall entry, every map element this process asks the kernel to write or delete, per map, so
// "an unchanged reconcile writes nothing" is the kernel's word, not the reconciler's report.

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BpfLink, BpfObject } from '../../src/datapath/bpfObject.js';
import { struct, u64 } from '../../src/datapath/codec.js';
import { BackendIdCodec } from '../../src/datapath/codecs/lb.js';
import { LbDatapath } from '../../src/datapath/lb.js';
import { LbReconciler } from '../../src/datapath/lbReconcile.js';
import type { TypedMap } from '../../src/datapath/typedMap.js';
import type { LbServiceIr } from '../../src/model/serviceLb.js';
import { compileBpf, describeKernel, FIXTURES, kernelSuite, removeAll, tempDir } from './helpers.js';
import { type Attempt, type LbWorld, service, startLbWorld, tally } from './lbHarness.js';

interface WriteCount {
  updates: bigint;
  deletes: bigint;
}
const WriteCountCodec = struct<WriteCount>('WriteCount', 'write_count')
  .field('updates', 'updates', u64)
  .field('deletes', 'deletes', u64)
  .build();

const MAPS = ['services', 'slots', 'members', 'backends'] as const;
type Counted = Record<(typeof MAPS)[number], { updates: number; deletes: number }>;

const M = 1021;

describeKernel(kernelSuite('the LB reconciler writes only what changed (counted in the kernel)'), () => {
  let w: LbWorld;
  let counter: BpfObject | undefined;
  let counts: TypedMap<number, WriteCount> | undefined;
  const links: BpfLink[] = [];
  let dir: Awaited<ReturnType<typeof tempDir>> | undefined;
  let ids: Record<(typeof MAPS)[number], number>;

  /** Which map each of this process's fds is (/proc/self/fdinfo says map_id). */
  const fdMaps = (): Map<number, number> => {
    const out = new Map<number, number>();
    for (const fd of readdirSync('/proc/self/fdinfo')) {
      let text = '';
      try {
        text = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
      } catch {
        continue; // closed meanwhile (the readdir fd itself)
      }
      const id = /^map_id:\s*(\d+)$/m.exec(text)?.[1];
      if (id !== undefined) out.set(Number(fd), Number(id));
    }
    return out;
  };

  /** The kernel's counts since the last call, per map (summed over every fd of that map). */
  let last = new Map<string, { updates: number; deletes: number }>();
  const delta = (): Counted => {
    const maps = fdMaps();
    const now = new Map<string, { updates: number; deletes: number }>();
    for (const [fd, c] of counts?.entries() ?? []) {
      const id = maps.get(fd);
      if (id !== undefined)
        now.set(`${fd}:${id}`, { updates: Number(c.updates), deletes: Number(c.deletes) });
    }
    const out = {} as Counted;
    for (const m of MAPS) {
      out[m] = { updates: 0, deletes: 0 };
      for (const [k, c] of now) {
        if (!k.endsWith(`:${ids[m]}`)) continue;
        const before = last.get(k);
        out[m].updates += c.updates - (before?.updates ?? 0);
        out[m].deletes += c.deletes - (before?.deletes ?? 0);
      }
    }
    // Keep what closed fds counted: the kernel's count for an fd number goes on if the number comes back.
    last = new Map([...last, ...now]);
    return out;
  };
  const zero: Counted = {
    services: { updates: 0, deletes: 0 },
    slots: { updates: 0, deletes: 0 },
    members: { updates: 0, deletes: 0 },
    backends: { updates: 0, deletes: 0 },
  };

  /** 40 services over 6 backends: random, Maglev, with and without affinity, one UDP. */
  const services = (): LbServiceIr[] => {
    const all = ['a', 'b', 'c', 'd', 'e', 'f'].map((n) => w.backend(n));
    return Array.from({ length: 40 }, (_, i) =>
      service(
        `bench/svc-${i}/http`,
        `10.96.7.${i + 1}`,
        80,
        [all[i % 6], all[(i + 1) % 6], all[(i + 2) % 6]].filter((b) => b !== undefined),
        {
          algorithm: i % 4 === 1 ? 'maglev' : 'random',
          ...(i % 5 === 2 ? { sessionAffinity: { type: 'ClientIP', timeoutSeconds: 60 } as const } : {}),
          ...(i === 39 ? { protocol: 'UDP' as const } : {}),
        },
      ),
    );
  };

  beforeAll(async () => {
    w = await startLbWorld(
      Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => [n, 'tcp:127.0.0.1'])),
      { reconciler: { maglevTableSize: M } },
    );
    dir = await tempDir('skein-count-');
    const obj = path.join(dir.path, 'count-map-writes.bpf.o');
    await compileBpf(path.join(FIXTURES, 'count-map-writes.bpf.c'), obj);
    const pid = Buffer.alloc(4);
    pid.writeUInt32LE(process.pid);
    const nr = Buffer.alloc(4);
    nr.writeUInt32LE(process.arch === 'arm64' ? 280 : 321);
    counter = BpfObject.open(obj, { pinRoot: path.join(w.bpffs.path, 'counter') })
      .setRodata('target_tgid', pid)
      .setRodata('nr_bpf', nr)
      .load();
    counts = counter.map('write_counts', BackendIdCodec, WriteCountCodec);
    ids = {
      services: w.lb.services.info.id,
      slots: w.lb.slots.info.id,
      members: w.lb.members.info.id,
      backends: w.lb.backends.info.id,
    };
    const prog = counter.program('count_bpf_writes');
    links.push(prog.attachRawTracepoint('sys_enter'));
    prog.close();
    delta();
  });

  afterAll(async () => {
    for (const l of links) l.close();
    counts?.close();
    counter?.close();
    await w?.stop();
    await removeAll([dir]);
  });

  it('counts, in the kernel, exactly the writes the reconciler reports for a first reconcile', async () => {
    const report = await w.reconcile(services());
    expect(report.errors).toEqual([]);
    const d = delta();
    // 10 Maglev tables of M slots (the 30 random services keep their 3 slots inline in their values);
    // members: 8 affinity services × 3 backends.
    // Seen at syscall entry: elements asked for, which is what the reconciler sends.
    expect(report.written).toEqual({ services: 40, slots: 10 * M, members: 8 * 3, backends: 6 });
    expect(report.deleted).toEqual({ services: 0, slots: 0, members: 0, backends: 0 });
    for (const m of MAPS) expect(d[m], m).toEqual({ updates: report.written[m], deletes: report.deleted[m] });
    expect(report.waited).toBe(false);
    const attempts = (await w.client(['tcp', '10.96.7.1', '80', '12'])) as Attempt[];
    expect(Object.keys(tally(attempts)).sort()).toEqual(['a', 'b', 'c']);
  });

  it('writes nothing at all when nothing changed', async () => {
    const report = await w.reconcile(services());
    expect(report.changed).toEqual([]);
    expect(delta()).toEqual(zero);
    expect(report.waited).toBe(false);
  });

  it('writes only the keys of the one service that changed: its new set and value; then deletes its old set', async () => {
    const next = services();
    const changed = next[5];
    if (changed === undefined) throw new Error('no service 5');
    // svc-5 is Maglev (5 % 4 === 1) over f, a, b: drop b.
    next[5] = { ...changed, backends: changed.backends.slice(0, 2) };
    const report = await w.reconcile(next);
    expect(report.changed).toEqual(['bench/svc-5/http']);
    expect(delta()).toEqual({
      services: { updates: 1, deletes: 0 },
      slots: { updates: M, deletes: M },
      members: { updates: 0, deletes: 0 },
      backends: { updates: 0, deletes: 0 },
    });
    expect(report.waited).toBe(true);
    const attempts = (await w.client(['tcp', '10.96.7.6', '80', '8', '127.0.0.2'])) as Attempt[];
    expect(attempts.filter((a) => !a.ok)).toEqual([]);
    expect(['f', 'a']).toContain(attempts[0]?.backend);
  });

  it('rewrites one service value, nothing else, when only its affinity timeout changes', async () => {
    const next = services();
    const s = next[2];
    if (s === undefined) throw new Error('no service 2');
    next[5] = { ...(next[5] as LbServiceIr), backends: (next[5] as LbServiceIr).backends.slice(0, 2) };
    next[2] = { ...s, sessionAffinity: { type: 'ClientIP', timeoutSeconds: 120 } };
    await w.reconcile(next);
    expect(delta()).toEqual({ ...zero, services: { updates: 1, deletes: 0 } });
  });

  it('flips a small random service with its one value write: its slots are inline', async () => {
    const next = services();
    next[5] = { ...(next[5] as LbServiceIr), backends: (next[5] as LbServiceIr).backends.slice(0, 2) };
    next[2] = { ...(next[2] as LbServiceIr), sessionAffinity: { type: 'ClientIP', timeoutSeconds: 120 } };
    const s0 = next[0] as LbServiceIr; // random over a, b, c
    const report = await w.reconcile([{ ...s0, backends: s0.backends.slice(1) }, ...next.slice(1)]);
    expect(report.changed).toEqual(['bench/svc-0/http']);
    expect(delta()).toEqual({ ...zero, services: { updates: 1, deletes: 0 } });
    const attempts = (await w.client(['tcp', '10.96.7.1', '80', '20'])) as Attempt[];
    expect(Object.keys(tally(attempts)).sort()).toEqual(['b', 'c']);
    await w.reconcile(next);
    delta();
  });

  it('writes nothing after an agent restart on the pinned maps (the state is read back from the kernel)', async () => {
    const next = services();
    next[5] = { ...(next[5] as LbServiceIr), backends: (next[5] as LbServiceIr).backends.slice(0, 2) };
    next[2] = { ...(next[2] as LbServiceIr), sessionAffinity: { type: 'ClientIP', timeoutSeconds: 120 } };
    const second = LbDatapath.load({ pinRoot: w.bpffs.path });
    try {
      const restarted = new LbReconciler(second, { maglevTableSize: M });
      const report = await restarted.reconcile({ services: next });
      expect(report.errors).toEqual([]);
      expect(report.changed).toEqual([]);
      expect(delta()).toEqual(zero);
      // And a change made by the new agent is as small as from the old one.
      const report2 = await restarted.reconcile({ services: next.slice(0, 39) });
      expect(report2.changed).toEqual(['bench/svc-39/http']);
      expect(delta()).toEqual({
        services: { updates: 0, deletes: 1 },
        slots: { updates: 0, deletes: 0 },
        members: { updates: 0, deletes: 0 },
        backends: { updates: 0, deletes: 0 },
      });
    } finally {
      second.close();
    }
  });

  it('cleans up, on the next reconcile, a slot set a crash left behind', async () => {
    // A set no service points at, as a crash between a flip and its cleanup would leave.
    w.lb.slots.setMany([
      [{ slotSet: 4_000_000, slot: 0 }, { backendId: 1 }],
      [{ slotSet: 4_000_000, slot: 1 }, { backendId: 2 }],
    ]);
    delta();
    const second = LbDatapath.load({ pinRoot: w.bpffs.path });
    try {
      const restarted = new LbReconciler(second, { maglevTableSize: M });
      const ir = services().slice(0, 39);
      ir[5] = { ...(ir[5] as LbServiceIr), backends: (ir[5] as LbServiceIr).backends.slice(0, 2) };
      ir[2] = { ...(ir[2] as LbServiceIr), sessionAffinity: { type: 'ClientIP', timeoutSeconds: 120 } };
      const report = await restarted.reconcile({ services: ir });
      expect(report.deleted.slots).toBe(2);
      expect(delta()).toEqual({ ...zero, slots: { updates: 0, deletes: 2 } });
      expect(second.slots.get({ slotSet: 4_000_000, slot: 0 })).toBeUndefined();
    } finally {
      second.close();
    }
  });
});
