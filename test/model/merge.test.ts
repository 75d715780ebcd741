import { describe, expect, it } from 'vitest';
import type { Ir, IrBackend, IrListener, IrRoute, IrSecret, IrVirtualHost } from '../../src/model/ir.js';
import { createIrMerger, MERGE_CONFLICT, mergeIr } from '../../src/model/merge.js';
import { validate } from '../../src/model/validate.js';

const route = (name: string, backend: string): IrRoute => ({
  name,
  match: { path: { kind: 'PathPrefix', value: '/' } },
  action: { kind: 'forward', backends: [{ backend, weight: 1 }] },
});
const vhost = (listener: string, host: string, r: IrRoute): IrVirtualHost => ({
  name: `${listener}/${host}`,
  hostnames: [host],
  routes: [r],
});
const backend = (name: string, address = '10.0.0.1'): IrBackend => ({
  name,
  protocol: 'http1',
  endpoints: [{ address, port: 8080, ready: true }],
});
const secret = (name: string, pem = 'CERT'): IrSecret => ({ name, certificateChain: pem, privateKey: 'KEY' });
const L80 = 'listener/0.0.0.0/80';
const L443 = 'listener/0.0.0.0/443';

function http(vhosts: readonly IrVirtualHost[]): IrListener {
  return { name: L80, address: '0.0.0.0', port: 80, protocol: 'HTTP', virtualHosts: vhosts };
}

function https(
  vhosts: readonly IrVirtualHost[],
  certificates: { hostnames: string[]; secretNames: string[] }[],
): IrListener {
  return {
    name: L443,
    address: '0.0.0.0',
    port: 443,
    protocol: 'HTTPS',
    virtualHosts: vhosts,
    tls: { mode: 'Terminate', certificates },
  };
}

/** Deeply frozen, so that a merge that writes to its input throws. */
function frozen<T>(x: T): T {
  if (typeof x === 'object' && x !== null) {
    for (const v of Object.values(x)) frozen(v);
    Object.freeze(x);
  }
  return x;
}

const gateway: Ir = frozen({
  listeners: [
    http([vhost(L80, 'gw.example.com', route('httproute/default/a/rule/0/match/0', 'default/a/80'))]),
    https(
      [vhost(L443, 'gw.example.com', route('httproute/default/a/rule/0/match/0', 'default/a/80'))],
      [{ hostnames: ['gw.example.com'], secretNames: ['default/gw-cert'] }],
    ),
  ],
  backends: [backend('default/a/80'), backend('default/shared/80')],
  secrets: [secret('default/gw-cert'), secret('default/shared-cert')],
});

const ingress: Ir = frozen({
  listeners: [
    http([
      vhost(L80, 'gw.example.com', route('ingress/default/i/rule/0/match/0', 'default/b/80')),
      vhost(L80, 'in.example.com', route('ingress/default/i/rule/1/match/0', 'default/shared/80')),
    ]),
    {
      name: 'listener/127.0.0.1/8080',
      address: '127.0.0.1',
      port: 8080,
      protocol: 'HTTP',
      virtualHosts: [
        vhost('listener/127.0.0.1/8080', '*', route('ingress/default/j/default-backend', 'default/b/80')),
      ],
    },
  ],
  backends: [backend('default/b/80'), backend('default/shared/80')],
  secrets: [secret('default/shared-cert')],
});

describe('mergeIr', () => {
  it('returns the only non-empty IR as it is', () => {
    const empty: Ir = { listeners: [], backends: [], secrets: [] };
    expect(mergeIr(gateway, empty).ir).toBe(gateway);
    expect(mergeIr(empty, ingress).ir).toBe(ingress);
    expect(mergeIr(gateway, empty).conflicts).toEqual([]);
  });

  it('merges listeners of one socket, keeps the others as they are, and the Gateway API wins a hostname', () => {
    const { ir, conflicts } = mergeIr(gateway, ingress);
    expect(validate(ir)).toEqual([]);
    expect(ir.listeners.map((l) => l.name)).toEqual([L443, L80, 'listener/127.0.0.1/8080']);
    // Listeners only one side has are that side's objects.
    expect(ir.listeners[0]).toBe(gateway.listeners[1]);
    expect(ir.listeners[2]).toBe(ingress.listeners[1]);
    const merged = ir.listeners[1] as IrListener;
    expect(merged.virtualHosts.map((v) => v.name)).toEqual([
      `${L80}/gw.example.com`,
      `${L80}/in.example.com`,
    ]);
    // gw.example.com is the Gateway's; the Ingress's virtual host for it loses.
    expect(merged.virtualHosts[0]).toBe(gateway.listeners[0]?.virtualHosts[0]);
    expect(merged.virtualHosts[1]).toBe(ingress.listeners[0]?.virtualHosts[1]);
    expect(conflicts).toEqual([
      expect.objectContaining({ code: MERGE_CONFLICT, kind: 'virtualHost', name: `${L80}/gw.example.com` }),
    ]);
    // Backends and secrets: by name, once each, sorted.
    expect(ir.backends.map((b) => b.name)).toEqual(['default/a/80', 'default/b/80', 'default/shared/80']);
    expect(ir.secrets.map((s) => s.name)).toEqual(['default/gw-cert', 'default/shared-cert']);
  });

  it('gives a server name to the first certificate set that lists it, and the fallback to the first one', () => {
    const other: Ir = frozen({
      listeners: [
        https(
          [vhost(L443, 'in.example.com', route('ingress/default/i/rule/0/match/0', 'default/b/80'))],
          [
            { hostnames: [], secretNames: ['default/in-cert'] },
            { hostnames: ['GW.example.com', 'in.example.com'], secretNames: ['default/in-cert'] },
          ],
        ),
      ],
      backends: [backend('default/b/80')],
      secrets: [secret('default/in-cert')],
    });
    const withFallback: Ir = frozen({
      ...gateway,
      listeners: [
        https(gateway.listeners[1]?.virtualHosts ?? [], [
          { hostnames: [], secretNames: ['default/gw-cert'] },
          { hostnames: ['gw.example.com'], secretNames: ['default/gw-cert'] },
        ]),
      ],
    });
    const { ir, conflicts } = mergeIr(withFallback, other);
    expect(validate(ir)).toEqual([]);
    expect(ir.listeners[0]?.tls?.certificates).toEqual([
      { hostnames: [], secretNames: ['default/gw-cert'] },
      { hostnames: ['gw.example.com'], secretNames: ['default/gw-cert'] },
      { hostnames: ['in.example.com'], secretNames: ['default/in-cert'] },
    ]);
    expect(conflicts.map((c) => c.kind).sort()).toEqual(['certificate', 'certificate']);
  });

  it('drops a listener of another protocol on a socket an earlier IR holds', () => {
    const tcp: Ir = frozen({
      listeners: [
        {
          name: L80,
          address: '0.0.0.0',
          port: 80,
          protocol: 'TCP',
          virtualHosts: [],
          l4Routes: [{ name: 'tcproute/default/t/rule/0', hostnames: [], backends: [] }],
        },
      ],
      backends: [],
      secrets: [],
    });
    const { ir, conflicts } = mergeIr(tcp, ingress);
    expect(ir.listeners.find((l) => l.name === L80)).toBe(tcp.listeners[0]);
    expect(conflicts).toEqual([expect.objectContaining({ kind: 'listener', name: L80 })]);
    expect(conflicts[0]?.message).toMatch(
      /HTTP on 0\.0\.0\.0:80 is not served: the socket already serves TCP/,
    );
  });

  it('keeps the first of two different backends or secrets of one name, and says so', () => {
    const a: Ir = frozen({
      listeners: [],
      backends: [backend('default/x/80', '10.0.0.1')],
      secrets: [secret('s', 'A')],
    });
    const b: Ir = frozen({
      listeners: [],
      backends: [backend('default/x/80', '10.0.0.2')],
      secrets: [secret('s', 'B')],
    });
    const { ir, conflicts } = mergeIr(a, b);
    expect(ir.backends).toEqual(a.backends);
    expect(ir.secrets).toEqual(a.secrets);
    expect(conflicts.map((c) => c.kind)).toEqual(['backend', 'secret']);
    // Equal content under one name is no conflict.
    expect(mergeIr(a, frozen({ ...a })).conflicts).toEqual([]);
  });

  it('is deterministic: the same inputs give the same bytes', () => {
    expect(JSON.stringify(mergeIr(gateway, ingress))).toBe(JSON.stringify(mergeIr(gateway, ingress)));
  });
});

describe('createIrMerger', () => {
  it('returns the last result for the same inputs, and reuses merged listeners whose inputs did not change', () => {
    const merge = createIrMerger();
    const first = merge(gateway, ingress);
    expect(merge(gateway, ingress)).toBe(first);
    // Another Ingress IR in which only the 8080 listener changed: the merged :80 listener is reused.
    const changed: Ir = {
      ...ingress,
      listeners: [
        ingress.listeners[0] as IrListener,
        { ...(ingress.listeners[1] as IrListener), port: 8080 },
      ],
    };
    const second = merge(gateway, changed);
    expect(second).not.toBe(first);
    expect(second.ir.listeners[1]).toBe(first.ir.listeners[1]);
    expect(second.conflicts).toEqual(first.conflicts);
  });
});
