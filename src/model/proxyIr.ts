import { isIP } from 'node:net';
import { emptyIr, type Ir, type IrListener } from './ir.js';
import { listenerName, ORIGINAL_DESTINATION_BACKEND, proxyRouteName, virtualHostName } from './names.js';
import type { PolicyIr } from './policy.js';

export interface ProxyIrOptions {
  /** SO_MARK of the proxy's upstream connections (the policy datapath's from-proxy mark). */
  readonly upstreamMark?: number;
}

/**
 * What the node Envoy must serve for the policy IR's redirects: for each proxy port a redirect rule
 * names, a transparent listener on the wildcard address of each family whose endpoints are redirected
 * (the datapath finds the listener on that family's loopback), forwarding every request to its original
 * destination. The L7 rules of a later issue will add routes before that last one. Pure; the empty IR
 * (the very same object) when nothing is redirected, so a caller can compare by identity.
 */
export function proxyIr(policy: PolicyIr, options: ProxyIrOptions = {}): Ir {
  const wanted = new Map<string, { address: string; port: number }>();
  for (const e of policy.endpoints) {
    const ports = new Set<number>();
    for (const r of [...e.ingress.rules, ...e.egress.rules]) {
      if (r.verdict === 'redirect' && r.proxyPort !== undefined) ports.add(r.proxyPort);
    }
    if (ports.size === 0) continue;
    // A pod's flows to any address of either family can be redirected, and the datapath looks up the
    // proxy in the family of the packet: every family the pod has.
    const families = new Set(e.addresses.map((a) => isIP(a)));
    for (const port of ports) {
      for (const f of families) {
        const address = f === 6 ? '::' : '0.0.0.0';
        wanted.set(listenerName(address, port), { address, port });
      }
    }
  }
  if (wanted.size === 0) return emptyIr;
  const listeners = [...wanted]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(
      ([name, { address, port }]): IrListener => ({
        name,
        address,
        port,
        protocol: 'HTTP',
        transparent: true,
        virtualHosts: [
          {
            name: virtualHostName(name, '*'),
            hostnames: ['*'],
            routes: [
              {
                name: proxyRouteName(name),
                match: { path: { kind: 'PathPrefix', value: '/' } },
                action: { kind: 'forward', backends: [{ backend: ORIGINAL_DESTINATION_BACKEND, weight: 1 }] },
              },
            ],
          },
        ],
      }),
    );
  return {
    listeners,
    backends: [
      {
        name: ORIGINAL_DESTINATION_BACKEND,
        protocol: 'http1',
        endpoints: [],
        originalDestination: options.upstreamMark === undefined ? {} : { upstreamMark: options.upstreamMark },
      },
    ],
    secrets: [],
  };
}
