// The packet parser (bpf/include/skein_parse.h) through the tc program skein_tc_flow, run in the kernel
// on crafted packets with BPF_PROG_TEST_RUN; what it parsed comes back as flow events on the ring buffer.

import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BpfProgram, RingBuffer } from '../../src/datapath/bpfObject.js';
import { encodeAddress } from '../../src/datapath/codec.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { LbDatapath } from '../../src/datapath/lb.js';
import { describeKernel, kernelSuite, type Made, mountBpffs, removeAll } from './helpers.js';

const TC_ACT_UNSPEC = -1;

function ethernet(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  Buffer.from([2, 0, 0, 0, 0, 2]).copy(h, 0);
  Buffer.from([2, 0, 0, 0, 0, 1]).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

function ipv4(
  proto: number,
  src: string,
  dst: string,
  l4: Buffer,
  opts: { ihl?: number; fragOffset?: number } = {},
) {
  const ihl = opts.ihl ?? 5;
  const h = Buffer.alloc(Math.max(ihl, 5) * 4);
  h[0] = 0x40 | ihl;
  h.writeUInt16BE(h.length + l4.length, 2);
  h.writeUInt16BE(opts.fragOffset ?? 0, 6);
  h[8] = 64;
  h[9] = proto;
  encodeAddress(src).copy(h, 12, 12, 16);
  encodeAddress(dst).copy(h, 16, 12, 16);
  return ethernet(0x0800, Buffer.concat([h, l4]));
}

function ipv6(nextHeader: number, src: string, dst: string, l4: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(l4.length, 4);
  h[6] = nextHeader;
  h[7] = 64;
  encodeAddress(src).copy(h, 8);
  encodeAddress(dst).copy(h, 24);
  return ethernet(0x86dd, Buffer.concat([h, l4]));
}

function ports(sport: number, dport: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  b.writeUInt16BE(sport, 0);
  b.writeUInt16BE(dport, 2);
  return b;
}

describeKernel(kernelSuite('packet parser (tc, BPF_PROG_TEST_RUN)'), () => {
  let bpffs: Made | undefined;
  let lb: LbDatapath | undefined;
  let prog: BpfProgram;
  let flows: RingBuffer<FlowEvent>;

  beforeAll(async () => {
    bpffs = await mountBpffs();
    lb = LbDatapath.load({ pinRoot: bpffs.path, tcEvents: true });
    prog = lb.program('skein_tc_flow');
    flows = lb.flows();
  });
  afterAll(async () => {
    flows?.close();
    prog?.close();
    lb?.close();
    await removeAll([bpffs]);
  });

  /** Runs the packet through the program; returns its verdict and the one event it emitted, if any. */
  function run(packet: Buffer): { retval: number; event: FlowEvent | undefined } {
    expect(flows.consume()).toEqual([]);
    const r = prog.testRun(packet);
    expect(r.data.equals(packet)).toBe(true); // the parser never changes the packet
    const events = flows.consume();
    expect(events.length).toBeLessThanOrEqual(1);
    return { retval: r.retval, event: events[0] };
  }

  it('parses IPv4 TCP', () => {
    const { retval, event } = run(ipv4(6, '10.0.0.1', '10.0.0.2', ports(40000, 80, 20)));
    expect(retval).toBe(TC_ACT_UNSPEC);
    expect(event).toMatchObject({
      source: '10.0.0.1',
      destination: '10.0.0.2',
      originalDestination: '10.0.0.2',
      sourcePort: 40000,
      destinationPort: 80,
      protocol: 6,
      verdict: 'pass',
      reason: 'none',
      hook: 'tc',
      sourceIdentity: 0,
      destinationIdentity: 0,
    });
    expect(event?.timestampNs).toBeGreaterThan(0n);
    expect(event?.ifindex).toBeGreaterThan(0);
  });

  it('finds the ports after IPv4 options (IHL 6)', () => {
    const { event } = run(ipv4(17, '192.168.1.1', '192.168.1.2', ports(5353, 53, 8), { ihl: 6 }));
    expect(event).toMatchObject({ protocol: 17, sourcePort: 5353, destinationPort: 53, reason: 'none' });
  });

  it('parses IPv6 UDP', () => {
    const { retval, event } = run(ipv6(17, '2001:db8::1', '2001:db8::2', ports(1234, 53, 8)));
    expect(retval).toBe(TC_ACT_UNSPEC);
    expect(event).toMatchObject({
      source: '2001:db8::1',
      destination: '2001:db8::2',
      sourcePort: 1234,
      destinationPort: 53,
      protocol: 17,
      reason: 'none',
    });
  });

  it('reports what it cannot parse, with what it has', () => {
    // Ends inside the TCP header: addresses known, ports not.
    const short = run(ipv4(6, '10.0.0.1', '10.0.0.2', Buffer.alloc(2)));
    expect(short.event).toMatchObject({
      source: '10.0.0.1',
      sourcePort: 0,
      destinationPort: 0,
      reason: 'parseTruncated',
    });
    // Options that run past the end (IHL 15, 20 bytes of header): the ports are out of reach. (A packet
    // that ends inside the fixed IPv4 or IPv6 header cannot be test-run: the kernel refuses it with EINVAL
    // before the program runs; the parser checks for it all the same.)
    const shorter = run(ipv4(6, '10.0.0.1', '10.0.0.2', Buffer.alloc(0), { ihl: 15 }).subarray(0, 14 + 20));
    expect(shorter.event).toMatchObject({
      source: '10.0.0.1',
      destination: '10.0.0.2',
      reason: 'parseTruncated',
    });
    // A non-first fragment carries no ports.
    const frag = run(ipv4(17, '10.0.0.1', '10.0.0.2', ports(1, 2, 8), { fragOffset: 100 }));
    expect(frag.event).toMatchObject({ protocol: 17, sourcePort: 0, reason: 'parseFragment' });
    // IHL below 5 is impossible.
    const bad = run(ipv4(6, '10.0.0.1', '10.0.0.2', ports(1, 2, 20), { ihl: 4 }));
    expect(bad.event).toMatchObject({ reason: 'parseMalformed' });
    // IPv6 extension headers are not walked yet.
    const ext = run(ipv6(0, 'fe80::1', 'ff02::16', Buffer.alloc(8)));
    expect(ext.event).toMatchObject({ source: 'fe80::1', protocol: 0, reason: 'parseIpv6Ext' });
    // IPv6 TCP that ends inside the ports.
    const short6 = run(ipv6(6, '2001:db8::1', '2001:db8::2', Buffer.alloc(3)));
    expect(short6.event).toMatchObject({ source: '2001:db8::1', protocol: 6, reason: 'parseTruncated' });
    for (const r of [short, shorter, frag, bad, ext, short6]) expect(r.retval).toBe(TC_ACT_UNSPEC);
  });

  it('lets non-IP packets through without an event', () => {
    const arp = run(ethernet(0x0806, Buffer.alloc(28)));
    expect(arp).toEqual({ retval: TC_ACT_UNSPEC, event: undefined });
  });

  it('runs fast enough to sit on every packet', () => {
    const r = prog.testRun(ipv4(6, '10.0.0.1', '10.0.0.2', ports(40000, 80, 20)), { repeat: 1000 });
    flows.consume();
    expect(r.retval).toBe(TC_ACT_UNSPEC);
    expect(r.durationNs).toBeLessThan(50_000);
  });
});
