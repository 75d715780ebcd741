// The pure half of the policy datapath: IR → map entries (port ranges as prefixes, flattened precedence,
// LPM keys) and the diff that decides which keys are written. The kernel half is policy.prog.test.ts and
// policy.e2e.test.ts.

import { describe, expect, it } from 'vitest';
import { PolicyEntryCodec, PolicyKeyCodec } from '../../src/datapath/codecs/policy.js';
import { diffMaps, encodeEntries } from '../../src/datapath/mapDiff.js';
import { flatten, lpmKey, planPolicy, portRangePrefixes } from '../../src/datapath/policyPlan.js';
import type { PolicyIr, PolicyRule } from '../../src/model/policy.js';

/** The ports a set of blocks covers. */
function covered(blocks: { port: number; bits: number }[]): number[] {
  return blocks.flatMap((b) => Array.from({ length: 2 ** (16 - b.bits) }, (_, i) => b.port + i));
}

describe('portRangePrefixes', () => {
  it('covers a range exactly with aligned blocks', () => {
    expect(portRangePrefixes(80, 80)).toEqual([{ port: 80, bits: 16 }]);
    expect(portRangePrefixes(1000, 1999)).toEqual([
      { port: 1000, bits: 13 },
      { port: 1008, bits: 12 },
      { port: 1024, bits: 7 },
      { port: 1536, bits: 8 },
      { port: 1792, bits: 9 },
      { port: 1920, bits: 10 },
      { port: 1984, bits: 12 },
    ]);
    expect(portRangePrefixes(0, 65535)).toEqual([{ port: 0, bits: 0 }]);
    expect(portRangePrefixes(1, 65535)).toHaveLength(16);
  });

  it('covers every range of a sample exactly, without overlap, in at most 30 blocks', () => {
    // A deterministic sample of ranges (a small LCG), plus the edges.
    const ranges: [number, number][] = [
      [1, 1],
      [65535, 65535],
      [1, 2],
      [32767, 32768],
    ];
    let x = 12345;
    for (let i = 0; i < 120; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const a = x % 65536;
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const b = x % 65536;
      ranges.push([Math.min(a, b), Math.max(a, b)]);
    }
    for (const [lo, hi] of ranges) {
      const blocks = portRangePrefixes(lo, hi);
      expect(blocks.length, `${lo}..${hi}`).toBeLessThanOrEqual(30);
      for (const b of blocks)
        expect(b.port % 2 ** (16 - b.bits), `${lo}..${hi} block ${b.port}/${b.bits}`).toBe(0);
      const ports = covered(blocks);
      expect(ports.length, `${lo}..${hi}`).toBe(hi - lo + 1);
      expect(ports[0]).toBe(lo);
      expect(ports[ports.length - 1]).toBe(hi);
      expect(new Set(ports).size).toBe(ports.length);
    }
  });

  it('refuses what is not a range', () => {
    expect(() => portRangePrefixes(90, 80)).toThrow(/Cannot cover ports 90..80/);
    expect(() => portRangePrefixes(1, 70000)).toThrow(/within 0..65535/);
  });
});

describe('lpmKey', () => {
  it('maps IPv4 into the IPv6 space (96 bits more) and keeps IPv6 as is', () => {
    expect(lpmKey('10.0.0.0/8')).toEqual({ prefixLength: 104, address: '10.0.0.0' });
    expect(lpmKey('10.1.2.3/32')).toEqual({ prefixLength: 128, address: '10.1.2.3' });
    expect(lpmKey('2001:db8::/32')).toEqual({ prefixLength: 32, address: '2001:db8::' });
    expect(lpmKey('10.1.2.3/8')).toEqual({ prefixLength: 104, address: '10.0.0.0' });
    expect(() => lpmKey('10.0.0.0/40')).toThrow(/not a CIDR/);
  });
});

describe('flatten', () => {
  // bits after the fixed 72: 0 any protocol, 8 one protocol, 24 one port; value = proto << 16 | port.
  const c = (bits: number, proto: number, port: number, rank: number, proxyPort = 0) => ({
    bits,
    value: proto * 65536 + port,
    rank,
    proxyPort,
  });

  it('gives a more specific entry the verdict of a stronger cover, and drops entries that add nothing', () => {
    // deny TCP (any port), allow TCP 22, allow any: 22 is denied too, so its entry is redundant.
    expect(flatten([c(8, 6, 0, 3), c(24, 6, 22, 1), c(0, 0, 0, 1)])).toEqual([c(0, 0, 0, 1), c(8, 6, 0, 3)]);
    // allow any, deny TCP 22: both stay.
    expect(flatten([c(0, 0, 0, 1), c(24, 6, 22, 3)])).toEqual([c(0, 0, 0, 1), c(24, 6, 22, 3)]);
    // redirect TCP 8080 over allow any: stays; allow TCP 8080 on top of it is folded into the redirect.
    expect(flatten([c(0, 0, 0, 1), c(24, 6, 8080, 2, 15001), c(24, 6, 8080, 1)])).toEqual([
      c(0, 0, 0, 1),
      c(24, 6, 8080, 2, 15001),
    ]);
  });

  it('keeps one of two entries for the same key: the higher verdict', () => {
    expect(flatten([c(24, 17, 53, 1), c(24, 17, 53, 3), c(24, 17, 53, 1)])).toEqual([c(24, 17, 53, 3)]);
  });
});

describe('planPolicy', () => {
  const allow = (peers: PolicyRule['peers'], ports: PolicyRule['ports']): PolicyRule => ({
    peers,
    ports,
    verdict: 'allow',
    origin: 't',
  });
  const ir: PolicyIr = {
    identities: [
      { id: 1, kind: 'reserved', name: 'host' },
      { id: 2, kind: 'reserved', name: 'world' },
      { id: 300, kind: 'labels', namespace: 'x', podLabels: {}, namespaceLabels: {} },
      { id: 0x0100_0000, kind: 'cidr', cidr: '2001:db8::/32' },
      { id: 0x0100_0001, kind: 'cidr', cidr: '::/8' },
    ],
    ipcache: [
      { prefix: '10.0.0.1/32', identity: 300 },
      { prefix: '10.0.0.2/32', identity: 300 },
    ],
    endpoints: [
      {
        name: 'x/a',
        addresses: ['10.0.0.1'],
        interface: 'lxc-a',
        identity: 300,
        ingress: { enforced: true, rules: [allow([300], [{ protocol: 'TCP', port: 8000, endPort: 8003 }])] },
        egress: { enforced: false, rules: [] },
      },
      {
        name: 'x/b',
        addresses: ['10.0.0.2'],
        interface: 'lxc-b',
        identity: 300,
        ingress: { enforced: false, rules: [] },
        egress: { enforced: true, rules: [allow('any', [])] },
      },
    ],
  };

  it('writes endpoints by ifindex, ipcache entries with the local ifindex, rules as port prefixes', () => {
    const plan = planPolicy(
      ir,
      new Map([
        ['lxc-a', 7],
        ['lxc-b', 9],
      ]),
    );
    expect(plan.endpoints).toEqual([
      [7, { identity: 300, flags: 1 }],
      [9, { identity: 300, flags: 2 }],
    ]);
    expect(plan.ipcache).toEqual([
      [
        { prefixLength: 128, address: '10.0.0.1' },
        { identity: 300, ifindex: 7 },
      ],
      [
        { prefixLength: 128, address: '10.0.0.2' },
        { identity: 300, ifindex: 9 },
      ],
    ]);
    expect(plan.policy).toEqual([
      [
        { prefixLength: 94, ifindex: 7, identity: 300, direction: 'ingress', protocol: 6, port: 8000 },
        { verdict: 'allow', proxyPort: 0 },
      ],
      [
        { prefixLength: 72, ifindex: 9, identity: 0, direction: 'egress', protocol: 0, port: 0 },
        { verdict: 'allow', proxyPort: 0 },
      ],
    ]);
    expect(plan.interfaces).toEqual(
      new Map([
        [7, 'x/a'],
        [9, 'x/b'],
      ]),
    );
    expect(plan.missing).toEqual([]);
  });

  it('gives the IPv4-mapped range no CIDR identity when an IPv6 prefix would cover it', () => {
    const plan = planPolicy(ir, new Map());
    expect(plan.cidrs).toEqual([
      [{ prefixLength: 32, address: '2001:db8::' }, 0x0100_0000],
      [{ prefixLength: 8, address: '::' }, 0x0100_0001],
      [{ prefixLength: 96, address: '0.0.0.0' }, 0],
    ]);
  });

  it('leaves out endpoints whose interface has no index, and says which', () => {
    const plan = planPolicy(ir, new Map([['lxc-b', 9]]));
    expect(plan.missing).toEqual(['x/a']);
    expect(plan.endpoints.map(([i]) => i)).toEqual([9]);
    expect(plan.ipcache.map(([, v]) => v.ifindex)).toEqual([0, 9]);
  });
});

describe('diffMaps', () => {
  const key = (port: number) => ({
    prefixLength: 96,
    ifindex: 7,
    identity: 300,
    direction: 'ingress' as const,
    protocol: 6,
    port,
  });
  const enc = (entries: [number, 'allow' | 'deny'][]) =>
    encodeEntries(
      entries.map(([p, v]) => [key(p), { verdict: v, proxyPort: 0 }] as const),
      PolicyKeyCodec,
      PolicyEntryCodec,
    );

  it('writes new and changed keys only, and deletes keys no longer wanted', () => {
    const current = enc([
      [80, 'allow'],
      [81, 'allow'],
      [82, 'allow'],
    ]);
    const d = diffMaps(
      current,
      enc([
        [80, 'allow'],
        [81, 'deny'],
        [83, 'allow'],
      ]),
    );
    expect(d.upserts.map((e) => [e.key.port, e.value.verdict])).toEqual([
      [81, 'deny'],
      [83, 'allow'],
    ]);
    expect(d.deletes.map((e) => e.key.port)).toEqual([82]);
  });

  it('writes nothing when nothing changed', () => {
    const entries: [number, 'allow' | 'deny'][] = [
      [80, 'allow'],
      [443, 'deny'],
    ];
    expect(diffMaps(enc(entries), enc(entries))).toEqual({ upserts: [], deletes: [] });
  });
});
