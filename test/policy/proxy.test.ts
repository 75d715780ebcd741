import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { emptyIr } from '../../src/model/ir.js';
import { ORIGINAL_DESTINATION_BACKEND } from '../../src/model/names.js';
import { proxyIr } from '../../src/model/proxyIr.js';
import { validate } from '../../src/model/validate.js';
import { NetpolCode } from '../../src/policy/codes.js';
import { REDIRECT_ANNOTATION, translatePolicy } from '../../src/policy/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet } from '../../src/sources/objects.js';

// The L7 redirect from the policy side: the redirect case of the golden files, with the node proxy on
// (the default) and off (`l7Proxy: false`), and the Envoy IR the agent serves for it (proxyIr).

function load(name: string): ObjectSet {
  const cache = new FileCache();
  const file = path.join(import.meta.dirname, 'testdata', `${name}.in.yaml`);
  cache.update(`${name}.in.yaml`, readFileSync(file, 'utf8'));
  return cache.snapshot().objects;
}

const objects = load('redirect');
const interfaces = new Map(
  objects.pods.flatMap((p) =>
    (p.status?.podIPs ?? []).map((ip) => [ip.ip ?? '', `lxc-${p.metadata?.name}`] as [string, string]),
  ),
);
const options = { nodeName: 'node-1', nodeAddresses: ['192.168.0.1'], interfaces };

describe('the L7 redirect, policy side', () => {
  it('serves one transparent listener per proxy port and family the redirects need, valid IR', () => {
    const { ir } = translatePolicy(objects, options);
    expect(ir.endpoints.some((e) => e.ingress.rules.some((r) => r.verdict === 'redirect'))).toBe(true);
    const l7 = proxyIr(ir, { upstreamMark: 0xb000 });
    expect(validate(l7)).toEqual([]);
    expect(l7.listeners.map((l) => [l.name, l.address, l.port, l.transparent])).toEqual([
      ['listener/0.0.0.0/15001', '0.0.0.0', 15001, true],
    ]);
    expect(l7.listeners[0]?.virtualHosts[0]?.routes[0]?.action).toEqual({
      kind: 'forward',
      backends: [{ backend: ORIGINAL_DESTINATION_BACKEND, weight: 1 }],
    });
    expect(l7.backends).toEqual([
      {
        name: ORIGINAL_DESTINATION_BACKEND,
        protocol: 'http1',
        endpoints: [],
        originalDestination: { upstreamMark: 0xb000 },
      },
    ]);
    // Another proxy port and an IPv6 pod: a listener each.
    const moved = translatePolicy(objects, { ...options, proxyPort: 15006 }).ir;
    const v6 = {
      ...moved,
      endpoints: moved.endpoints.map((e) => ({ ...e, addresses: [...e.addresses, 'fd00::1'] })),
    };
    expect(proxyIr(v6).listeners.map((l) => l.name)).toEqual([
      'listener/0.0.0.0/15006',
      'listener/[::]/15006',
    ]);
  });

  it('serves nothing when no rule redirects (the empty IR itself, for identity checks)', () => {
    const plain: ObjectSet = {
      ...objects,
      networkPolicies: objects.networkPolicies.map((np) => {
        const { [REDIRECT_ANNOTATION]: _gone, ...annotations } = np.metadata?.annotations ?? {};
        return { ...np, metadata: { ...np.metadata, annotations } };
      }),
    };
    expect(proxyIr(translatePolicy(plain, options).ir)).toBe(emptyIr);
  });

  it('with the L7 proxy off, allows the redirected ports directly and says so once per policy', () => {
    const on = translatePolicy(objects, options);
    const off = translatePolicy(objects, { ...options, l7Proxy: false });
    const verdicts = (ir: typeof on.ir) =>
      ir.endpoints.flatMap((e) => [...e.ingress.rules, ...e.egress.rules].map((r) => r.verdict));
    expect(verdicts(on.ir)).toContain('redirect');
    expect(verdicts(off.ir)).not.toContain('redirect');
    expect(proxyIr(off.ir)).toBe(emptyIr);
    const annotated = objects.networkPolicies.filter(
      (np) => np.metadata?.annotations?.[REDIRECT_ANNOTATION] !== undefined,
    );
    expect(off.diagnostics.filter((d) => d.code === NetpolCode.RedirectDisabled)).toEqual(
      annotated.map((np) => ({
        code: NetpolCode.RedirectDisabled,
        severity: 'warning',
        object: `NetworkPolicy/${np.metadata?.namespace}/${np.metadata?.name}`,
        field: `metadata.annotations.${REDIRECT_ANNOTATION}`,
        message:
          'the L7 proxy is off on this node (l7Proxy: false); the traffic its rules allow is allowed without the proxy',
      })),
    );
    // Each port a redirect rule took is allowed by some allow rule of the same endpoint now.
    for (const e of on.ir.endpoints) {
      const offEndpoint = off.ir.endpoints.find((x) => x.name === e.name);
      for (const dir of ['ingress', 'egress'] as const) {
        for (const r of e[dir].rules.filter((x) => x.verdict === 'redirect')) {
          for (const p of r.ports) {
            expect(
              offEndpoint?.[dir].rules.some(
                (a) =>
                  a.verdict === 'allow' &&
                  JSON.stringify(a.peers) === JSON.stringify(r.peers) &&
                  (a.ports.length === 0 ||
                    a.ports.some(
                      (q) =>
                        q.protocol === 'TCP' &&
                        (q.port === undefined ||
                          (q.port <= (p.port ?? 0) && (p.port ?? 0) <= (q.endPort ?? q.port))),
                    )),
              ),
              `${e.name} ${dir} ${p.port}`,
            ).toBe(true);
          }
        }
      }
    }
  });
});
