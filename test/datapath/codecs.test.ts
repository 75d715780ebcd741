// The codecs on their own (no kernel): exact bytes, round trips, and clear errors on bad input.

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeAddress, encodeAddress } from '../../src/datapath/codec.js';
import { FlowEventCodec } from '../../src/datapath/codecs/flow.js';
import {
  AffinityCodec,
  AffinityKeyCodec,
  BackendCodec,
  BackendIdCodec,
  RevNatKeyCodec,
  type Service,
  ServiceCodec,
  ServiceKeyCodec,
  SlotKeyCodec,
} from '../../src/datapath/codecs/lb.js';
import { ROOT } from './helpers.js';

describe('addresses', () => {
  it.each([
    ['10.96.0.10', '00000000000000000000ffff0a60000a'],
    ['127.0.0.1', '00000000000000000000ffff7f000001'],
    ['::1', '00000000000000000000000000000001'],
    ['::', '00000000000000000000000000000000'],
    ['fd00:96::10', 'fd000096000000000000000000000010'],
    ['2001:db8:0:0:1:0:0:1', '20010db8000000000001000000000001'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
  ])('%s is %s', (text, hex) => {
    expect(encodeAddress(text).toString('hex')).toBe(hex);
  });

  it.each([
    ['::ffff:10.96.0.10', '10.96.0.10'],
    ['2001:0db8:0000:0000:0001:0000:0000:0001', '2001:db8::1:0:0:1'],
    ['FD00::A', 'fd00::a'],
    ['fe80::1%eth0', 'fe80::1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:2:3:4:5:6:7:0', '1:2:3:4:5:6:7:0'],
  ])('%s decodes as %s (IPv4 mapped shown dotted, IPv6 as RFC 5952)', (text, canonical) => {
    expect(decodeAddress(encodeAddress(text))).toBe(canonical);
  });

  it('refuses what is not an address', () => {
    expect(() => encodeAddress('10.96.0.300')).toThrow('Cannot encode "10.96.0.300" as an address');
    expect(() => encodeAddress('svc.example')).toThrow(/not an IPv4 or IPv6 address/);
  });
});

describe('LB codecs', () => {
  it('encode a service key with the port and address in network order, padding zero', () => {
    const b = ServiceKeyCodec.encode({ address: '10.96.0.10', port: 80, protocol: 'TCP' });
    expect(b.toString('hex')).toBe('00000000000000000000ffff0a60000a' + '0050' + '06' + '00');
    expect(ServiceKeyCodec.decode(b)).toEqual({ address: '10.96.0.10', port: 80, protocol: 'TCP' });
    expect(ServiceKeyCodec.encode({ address: '10.96.0.10', port: 53, protocol: 'UDP' })[18]).toBe(17);
  });

  it('encode ids and counts in host order', () => {
    const svc: Service = {
      slotSet: 7,
      count: 2,
      tag: 0xabcd,
      id: 0x01020304,
      affinityTimeoutSeconds: 10800,
      algorithm: 'random',
      flags: 3,
      inlineSlots: [5, 6, 5, 6, 5, 6, 5, 6],
    };
    expect(ServiceCodec.size).toBe(56);
    expect(ServiceCodec.encode(svc).toString('hex')).toBe(
      `07000000` +
        `0200` +
        `cdab` +
        `04030201` +
        `302a0000` +
        `00` +
        `03` +
        `0000` +
        `00000000` +
        '0500000006000000'.repeat(4),
    );
    expect(ServiceCodec.decode(ServiceCodec.encode(svc))).toEqual(svc);
    expect(SlotKeyCodec.encode({ slotSet: 1, slot: 2 }).toString('hex')).toBe('0100000002000000');
    const aff = { netnsCookie: 0x1000n, address: '::', serviceId: 3 };
    expect(AffinityKeyCodec.encode(aff).toString('hex')).toBe(
      `0010000000000000${'00'.repeat(16)}0300000000000000`,
    );
    expect(AffinityCodec.decode(AffinityCodec.encode({ backendId: 5, lastNs: 123n }))).toEqual({
      backendId: 5,
      lastNs: 123n,
    });
    expect(BackendIdCodec.encode(7).toString('hex')).toBe('07000000');
    expect(BackendCodec.size).toBe(20);
    expect(RevNatKeyCodec.size).toBe(32);
    const key = { cookie: 0x1122334455667788n, address: '127.0.0.1', port: 8080 };
    expect(RevNatKeyCodec.decode(RevNatKeyCodec.encode(key))).toEqual(key);
  });

  it('refuse values that do not fit, naming the codec and the problem', () => {
    expect(() => ServiceKeyCodec.encode({ address: '10.0.0.1', port: 70000, protocol: 'TCP' })).toThrow(
      'Cannot encode 70000 as a port',
    );
    expect(() =>
      ServiceKeyCodec.encode({ address: '10.0.0.1', port: 80, protocol: 'SCTP' as 'TCP' }),
    ).toThrow('Cannot encode "SCTP": it is not one of TCP, UDP');
    const svc = {
      slotSet: 0,
      count: 0,
      tag: 0,
      id: -1,
      affinityTimeoutSeconds: 0,
      algorithm: 'random' as const,
      flags: 0,
      inlineSlots: [],
    };
    expect(() => ServiceCodec.encode(svc)).toThrow('Cannot encode -1 as a u32');
    expect(() => ServiceCodec.encode({ ...svc, id: 1, algorithm: 'ring' as 'random' })).toThrow(
      'Cannot encode "ring": it is not one of random, maglev',
    );
    expect(() => ServiceCodec.encode({ ...svc, id: 1, inlineSlots: new Array(9).fill(1) })).toThrow(
      'Cannot encode 9 inline slots: at most 8',
    );
    expect(() => ServiceCodec.decode(Buffer.alloc(7))).toThrow(
      'Cannot decode Service: it has 56 bytes, the buffer 7',
    );
  });
});

describe('flow events', () => {
  it('decode every field of a raw event', () => {
    const b = Buffer.alloc(FlowEventCodec.size);
    b.writeBigUInt64LE(123n, 0);
    b.writeBigUInt64LE(456n, 8);
    encodeAddress('127.0.0.1').copy(b, 16);
    encodeAddress('127.0.0.2').copy(b, 32);
    encodeAddress('10.96.0.10').copy(b, 48);
    b.writeUInt16BE(40000, 64);
    b.writeUInt16BE(8080, 66);
    b.writeUInt16BE(80, 68);
    b.set([6, 1, 1, 1], 70);
    b.writeUInt32LE(3, 76);
    b.writeUInt32LE(100, 80);
    b.writeUInt32LE(200, 84);
    expect(FlowEventCodec.decode(b)).toEqual({
      timestampNs: 123n,
      cookie: 456n,
      source: '127.0.0.1',
      destination: '127.0.0.2',
      originalDestination: '10.96.0.10',
      sourcePort: 40000,
      destinationPort: 8080,
      originalDestinationPort: 80,
      protocol: 6,
      verdict: 'translated',
      reason: 'lbBackend',
      hook: 'connect4',
      ifindex: 3,
      sourceIdentity: 100,
      destinationIdentity: 200,
    });
    b[72] = 200;
    expect(() => FlowEventCodec.decode(b)).toThrow(/Cannot decode 200: it is not one of/);
  });
});

/** The modules a source file imports at load time (not `import type`, not `import()`), as paths. */
async function staticImports(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)(?!\s+type\b)[^;]*?\sfrom\s+'(\.[^']+)'/gms)) {
    const spec = m[1];
    if (spec !== undefined) out.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  return out;
}

describe('the datapath stays optional', () => {
  it('is imported at load time only by src/agentDatapath.ts, which only `skein agent` imports, dynamically', async () => {
    const offenders: string[] = [];
    const importers: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (p !== path.join(ROOT, 'src/datapath')) await walk(p);
          continue;
        }
        if (!e.name.endsWith('.ts')) continue;
        const imports = await staticImports(p);
        if (imports.some((i) => i.startsWith(path.join(ROOT, 'src/datapath/'))))
          offenders.push(path.relative(ROOT, p));
        if (imports.includes(path.join(ROOT, 'src/agentDatapath.ts'))) importers.push(path.relative(ROOT, p));
      }
    };
    await walk(path.join(ROOT, 'src'));
    expect(offenders).toEqual(['src/agentDatapath.ts']);
    expect(importers).toEqual([]);
    expect(await readFile(path.join(ROOT, 'src/agent.ts'), 'utf8')).toMatch(
      /await import\('\.\/agentDatapath\.js'\)/,
    );
  });

  it('is not in the load-time import graph of `skein up` at all', async () => {
    const seen = new Set<string>();
    const queue = [path.join(ROOT, 'src/cli/main.ts')];
    while (queue.length > 0) {
      const f = queue.pop() as string;
      if (seen.has(f)) continue;
      seen.add(f);
      queue.push(...(await staticImports(f)));
    }
    // main.ts dispatches every command (agent included): what it loads is what `skein up` loads.
    expect(seen.has(path.join(ROOT, 'src/standalone.ts'))).toBe(true);
    expect(seen.has(path.join(ROOT, 'src/agent.ts'))).toBe(true);
    expect([...seen].filter((f) => f.includes('/src/datapath/') || f.endsWith('/agentDatapath.ts'))).toEqual(
      [],
    );
  });

  it('loads the addon lazily: importing the wrapper does not touch it', async () => {
    const src = await readFile(path.join(ROOT, 'src/datapath/addon.ts'), 'utf8');
    expect(src).not.toMatch(/^import .*\.node'/m);
    expect(src).toMatch(/createRequire\(import\.meta\.url\)\(ADDON_PATH\)/);
  });
});
