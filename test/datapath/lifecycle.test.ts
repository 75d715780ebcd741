// The addon's lifecycle on the real kernel: open, rodata, load, maps through codecs (and the size check
// when they do not fit), map operations and batches, pins, handles outliving their object, close.

import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  BpfObject,
  ensurePinDir,
  openPinnedMap,
  openPinnedProgram,
  unpin,
} from '../../src/datapath/bpfObject.js';
import { port, struct, u8, u32 } from '../../src/datapath/codec.js';
import { FlowEventCodec } from '../../src/datapath/codecs/flow.js';
import {
  BackendCodec,
  BackendIdCodec,
  type Service,
  ServiceCodec,
  type ServiceKey,
  ServiceKeyCodec,
} from '../../src/datapath/codecs/lb.js';
import { DatapathError } from '../../src/datapath/errors.js';
import {
  bpftool,
  describeKernel,
  exec,
  kernelSuite,
  LB_OBJECT,
  type Made,
  makeCgroup,
  mountBpffs,
  removeAll,
} from './helpers.js';

/** Throws from fn and returns the DatapathError. */
function datapathError(fn: () => unknown): DatapathError {
  try {
    fn();
  } catch (err) {
    if (err instanceof DatapathError) return err;
    throw err;
  }
  throw new Error('expected a DatapathError, nothing was thrown');
}

describeKernel(kernelSuite('BPF object lifecycle (addon over libbpf)'), () => {
  let bpffs: Made | undefined;

  beforeAll(async () => {
    bpffs = await mountBpffs();
  });
  afterAll(async () => {
    await removeAll([bpffs]);
  });

  const open = (): BpfObject =>
    BpfObject.open(LB_OBJECT, { pinRoot: path.join(bpffs?.path ?? '', 'lifecycle') });

  it('lists maps, programs and rodata before load, from the object', () => {
    const obj = open();
    try {
      const maps = Object.fromEntries(obj.maps().map((m) => [m.name, m]));
      expect(maps['skein_services']).toMatchObject({
        type: 'hash',
        keySize: 20,
        valueSize: 56,
        internal: false,
      });
      expect(maps['skein_flows']).toMatchObject({ type: 'ringbuf', maxEntries: 256 * 1024 });
      expect(maps['skein_services']?.pinPath).toBe(
        path.join(bpffs?.path ?? '', 'lifecycle', 'skein_services'),
      );
      const progs = Object.fromEntries(obj.programs().map((p) => [p.name, p]));
      expect(progs['skein_connect4']).toEqual({
        name: 'skein_connect4',
        section: 'cgroup/connect4',
        type: 'cgroup_sock_addr',
        attachType: 'cgroup_inet4_connect',
      });
      expect(progs['skein_tc_flow']).toEqual({ name: 'skein_tc_flow', section: 'tc', type: 'sched_cls' });
      expect(obj.rodata()).toEqual([
        { name: 'cfg_lb_events', offset: 0, size: 1 },
        { name: 'cfg_tc_events', offset: 1, size: 1 },
      ]);
    } finally {
      obj.close();
    }
  });

  it('refuses rodata of the wrong size, an unknown variable, and rodata after load', () => {
    const obj = open();
    try {
      const size = datapathError(() => obj.setRodata('cfg_lb_events', Buffer.alloc(4)));
      expect(size.code).toBe('SKEIN_BPF_RODATA_SIZE_MISMATCH');
      expect(size.message).toContain('rodata variable cfg_lb_events');
      expect(size.message).toContain('has 1 bytes, value has 4');
      expect(datapathError(() => obj.setRodata('cfg_nope', Buffer.of(1))).code).toBe(
        'SKEIN_BPF_RODATA_UNKNOWN_VAR',
      );
      obj.setRodata('cfg_lb_events', Buffer.of(1)).load();
      expect(datapathError(() => obj.setRodata('cfg_lb_events', Buffer.of(0))).code).toBe(
        'SKEIN_BPF_INVALID_STATE',
      );
      expect(datapathError(() => obj.load()).code).toBe('SKEIN_BPF_INVALID_STATE');
    } finally {
      obj.close();
    }
  });

  it('fails to open a map whose codec does not fit, naming the map, the sizes and the codec', () => {
    const obj = open().load();
    try {
      // A key codec for an IPv4-only layout (4 + 2 + 1 + 1 = 8 bytes): not the 20-byte key the map has.
      type V4Key = { address: number; port: number; protocol: number };
      const V4KeyCodec = struct<V4Key>('ServiceKeyV4', 'skein_lb_svc_key_v4')
        .field('address', 'addr', u32)
        .field('port', 'port', port)
        .field('protocol', 'proto', u8)
        .pad('pad0', 1)
        .build();
      const key = datapathError(() => obj.map('skein_services', V4KeyCodec, ServiceCodec));
      expect(key.code).toBe('SKEIN_BPF_MAP_SIZE_MISMATCH');
      expect(key.message).toBe(
        'SKEIN_BPF_MAP_SIZE_MISMATCH: map skein_services has key size 20, codec ServiceKeyV4 encodes 8',
      );
      const value = datapathError(() => obj.map('skein_backends', BackendIdCodec, ServiceCodec));
      expect(value.message).toBe(
        'SKEIN_BPF_MAP_SIZE_MISMATCH: map skein_backends has value size 20, codec Service encodes 56',
      );
      const ring = datapathError(() => obj.map('skein_flows', BackendIdCodec, FlowEventCodec));
      expect(ring.code).toBe('SKEIN_BPF_MAP_TYPE_MISMATCH');
      expect(datapathError(() => obj.map('skein_nope', BackendIdCodec, BackendCodec)).code).toBe(
        'SKEIN_BPF_NOT_FOUND',
      );
    } finally {
      obj.close();
    }
  });

  it('looks up, updates, deletes, iterates and batches through codecs', () => {
    const obj = open().load();
    const services = obj.map('skein_services', ServiceKeyCodec, ServiceCodec);
    obj.close(); // the map handle lives on without the object
    try {
      const vip = (n: number): ServiceKey => ({ address: `10.96.1.${n}`, port: 80, protocol: 'TCP' });
      const svc = (id: number, count: number): Service => ({
        slotSet: id,
        count,
        tag: 0,
        id,
        affinityTimeoutSeconds: 0,
        algorithm: 'random',
        flags: 0,
        inlineSlots: [0, 0, 0, 0, 0, 0, 0, 0],
      });
      expect(services.get(vip(1))).toBeUndefined();
      services.set(vip(1), svc(1, 2));
      expect(services.get(vip(1))).toEqual(svc(1, 2));
      expect(() => services.set(vip(1), svc(9, 9), 'noexist')).toThrow(/SKEIN_BPF_MAP_OP_FAILED.*errno 17/);
      services.set(vip(1), svc(1, 3), 'exist');
      expect(services.get(vip(1))?.count).toBe(3);

      const many: [ServiceKey, Service][] = [];
      for (let i = 2; i <= 40; i++) many.push([vip(i), svc(i, 1)]);
      many.push([{ address: 'fd00::a', port: 53, protocol: 'UDP' }, svc(100, 0)]);
      expect(services.setMany(many)).toBe(many.length);
      const all = services.entries();
      expect(all).toHaveLength(41);
      expect(
        new Map(all.map(([k, v]) => [`${k.address}/${k.port}/${k.protocol}`, v.id])).get('fd00::a/53/UDP'),
      ).toBe(100);
      expect([...services.keys()]).toHaveLength(41);

      expect(services.deleteMany(many.slice(0, 10).map(([k]) => k))).toBe(10);
      expect(services.delete(vip(1))).toBe(true);
      expect(services.delete(vip(1))).toBe(false);
      expect(services.entries()).toHaveLength(30);
      expect(() => services.deleteMany([vip(2)])).toThrow(/SKEIN_BPF_MAP_OP_FAILED/);
      for (const [k] of services.entries()) services.delete(k);
      expect(services.entries()).toEqual([]);
    } finally {
      services.close();
    }
    expect(() => services.get({ address: '10.96.1.1', port: 80, protocol: 'TCP' })).toThrow(
      /SKEIN_BPF_CLOSED/,
    );
  });

  it('pins maps by name under the pin root and reuses them, entries and all, on the next load', () => {
    const root = path.join(bpffs?.path ?? '', 'reuse');
    const first = BpfObject.open(LB_OBJECT, { pinRoot: root }).load();
    const backends = first.map('skein_backends', BackendIdCodec, BackendCodec);
    backends.set(7, { address: '127.0.0.7', port: 8080 });
    backends.close();
    first.close();
    expect(existsSync(path.join(root, 'skein_backends'))).toBe(true);

    const second = BpfObject.open(LB_OBJECT, { pinRoot: root }).load();
    const again = second.map('skein_backends', BackendIdCodec, BackendCodec);
    expect(again.get(7)).toEqual({ address: '127.0.0.7', port: 8080 });
    again.close();
    second.close();

    const pinned = openPinnedMap(path.join(root, 'skein_backends'), BackendIdCodec, BackendCodec);
    expect(pinned.info).toMatchObject({
      name: path.join(root, 'skein_backends'),
      type: 'hash',
      keySize: 4,
      valueSize: 20,
    });
    expect(pinned.get(7)?.port).toBe(8080);
    pinned.pin(path.join(root, 'backends-copy'));
    pinned.close();
    expect(unpin(path.join(root, 'backends-copy'))).toBe(true);
    expect(unpin(path.join(root, 'backends-copy'))).toBe(false);
    expect(() => openPinnedMap(path.join(root, 'skein_backends'), ServiceKeyCodec, ServiceCodec)).toThrow(
      /SKEIN_BPF_MAP_SIZE_MISMATCH: map .*skein_backends has key size 4, codec ServiceKey encodes 20/,
    );
  });

  it('pins a program, opens it again from the pin and attaches it at a named hook', async () => {
    const cgroup = await makeCgroup();
    const pin = path.join(bpffs?.path ?? '', 'prog-connect4');
    try {
      const obj = open().load();
      const prog = obj.program('skein_connect4');
      obj.close();
      expect(prog.info()).toMatchObject({
        name: 'skein_connect4',
        type: 'cgroup_sock_addr',
        attachType: 'cgroup_inet4_connect',
      });
      prog.pin(pin);
      const id = prog.info().id;
      prog.close();

      const pinned = openPinnedProgram(pin);
      expect(pinned.info()).toMatchObject({ id, type: 'cgroup_sock_addr' });
      // A pin does not say which hook the program was built for: attaching needs one.
      expect(datapathError(() => pinned.attachCgroup(cgroup.path)).code).toBe('SKEIN_BPF_INVALID_ARGUMENT');
      expect(datapathError(() => pinned.attachCgroup(cgroup.path, 'cgroup/nope')).message).toMatch(
        /unknown attach type/,
      );
      const link = pinned.attachCgroup(cgroup.path, 'cgroup/connect4');
      expect(link.info()).toMatchObject({ programId: id });
      const shown = JSON.parse(await exec(bpftool(), ['cgroup', 'show', cgroup.path, '-j'])) as {
        id: number;
      }[];
      expect(shown.map((p) => p.id)).toEqual([id]);
      link.close();
      pinned.close();
      expect((await exec(bpftool(), ['cgroup', 'show', cgroup.path, '-j'])).trim()).toBe('');
      expect(datapathError(() => pinned.info()).code).toBe('SKEIN_BPF_CLOSED');
    } finally {
      unpin(pin);
      await cgroup.remove();
    }
  });

  it('refuses to reuse a pinned map whose layout changed, saying what libbpf found', () => {
    // An older Skein left a map with another key size where skein_services is pinned.
    const root = path.join(bpffs?.path ?? '', 'stale');
    const older = BpfObject.open(LB_OBJECT, { pinRoot: path.join(bpffs?.path ?? '', 'older') }).load();
    const backends = older.map('skein_backends', BackendIdCodec, BackendCodec);
    older.close();
    ensurePinDir(root);
    backends.pin(path.join(root, 'skein_services'));
    backends.close();
    const obj = BpfObject.open(LB_OBJECT, { pinRoot: root });
    const err = datapathError(() => obj.load());
    obj.close();
    expect(err.code).toBe('SKEIN_BPF_LOAD_FAILED');
    expect(err.errno).toBe(22);
    expect(err.verifierLog).toBeUndefined();
    expect(err.message).toMatch(
      /^SKEIN_BPF_LOAD_FAILED: cannot load .*lb\.bpf\.o: couldn't reuse pinned map at '.*\/skein_services': parameter mismatch: Invalid argument \(errno 22\)$/,
    );
    expect(err.libbpfLog).toMatch(/couldn't reuse pinned map at '.*skein_services': parameter mismatch/);
    unpin(path.join(root, 'skein_services'));
  });

  it('polls a ring buffer off the event loop, one poll at a time, and closes it safely mid-poll', async () => {
    const obj = open().load();
    const flows = obj.ringBuffer('skein_flows', FlowEventCodec);
    obj.close();
    const started = Date.now();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const polling = flows.poll(300);
    expect(() => flows.consume()).toThrow(
      /SKEIN_BPF_INVALID_STATE: cannot consume while a poll\(\) is waiting/,
    );
    expect(await polling).toEqual([]);
    clearInterval(timer);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(ticks).toBeGreaterThan(5); // the event loop kept running meanwhile
    const late = flows.poll(200);
    flows.close(); // freed when the poll ends
    expect(await late).toEqual([]);
    expect(() => flows.consume()).toThrow(/SKEIN_BPF_CLOSED/);
  });

  it('refuses to pin or unpin outside bpffs, and to open a pin root that is not on bpffs', () => {
    const obj = open().load();
    const backends = obj.map('skein_backends', BackendIdCodec, BackendCodec);
    obj.close();
    try {
      const pin = datapathError(() => backends.pin('/tmp/skein-not-bpffs-pin'));
      expect(pin.code).toBe('SKEIN_BPF_PIN_FAILED');
      expect(datapathError(() => unpin('/tmp/skein-not-bpffs-pin')).message).toMatch(
        /not on a BPF filesystem/,
      );
    } finally {
      backends.close();
    }
    const root = datapathError(() => BpfObject.open(LB_OBJECT, { pinRoot: '/tmp/skein-no-bpffs/x' }));
    expect(root.code).toBe('SKEIN_BPF_NO_BPFFS');
  });

  it('reports a missing or broken object file as SKEIN_BPF_OPEN_FAILED with errno', () => {
    const missing = datapathError(() =>
      BpfObject.open('/nonexistent/x.bpf.o', { pinRoot: bpffs?.path ?? '' }),
    );
    expect(missing.code).toBe('SKEIN_BPF_OPEN_FAILED');
    expect(missing.errno).toBe(2);
    const notElf = datapathError(() =>
      BpfObject.open(path.join(import.meta.dirname, 'helpers.ts'), { pinRoot: bpffs?.path ?? '' }),
    );
    expect(notElf.code).toBe('SKEIN_BPF_OPEN_FAILED');
    expect(notElf.libbpfLog).toMatch(/elf/i);
  });

  it('keeps encode and decode exact for every LB map through the kernel', () => {
    const obj = open().load();
    const backends = obj.map('skein_backends', BackendIdCodec, BackendCodec);
    obj.close();
    try {
      for (const [id, b] of [
        [1, { address: '127.0.0.1', port: 1 }],
        [2, { address: '2001:db8::1', port: 65535 }],
        [0xffffffff, { address: '::', port: 443 }],
      ] as const) {
        backends.set(id, b);
        expect(backends.get(id)).toEqual(b);
      }
    } finally {
      backends.close();
    }
  });
});
