import { describe, expect, it } from 'vitest';
import { authorityGuard, matchesHost, parentWildcard } from '../../src/ingress/hosts.js';
import { createIngressTranslator, translateIngress } from '../../src/ingress/translate.js';
import { emptyIr } from '../../src/model/ir.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { Ingress, ObjectSet } from '../../src/sources/objects.js';

const T1 = '2024-01-01T00:00:00Z';
const T2 = '2024-01-02T00:00:00Z';

function objects(yaml: string): ObjectSet {
  const cache = new FileCache();
  cache.update('in.yaml', yaml);
  const { objects: o, diagnostics } = cache.snapshot();
  expect(diagnostics).toEqual([]);
  return o;
}

const BASE = `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: skein }
spec: { controller: skein.io/ingress-controller }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: a, namespace: default }
spec:
  ingressClassName: skein
  rules:
    - host: a.example.com
      http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }] }
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: b
  namespace: default
  annotations: { ingress.skein.io/http-port: "8080" }
spec:
  ingressClassName: skein
  rules:
    - host: b.example.com
      http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }] }
`;

describe('Ingress hosts', () => {
  it('matches a wildcard on exactly one label', () => {
    expect(matchesHost('*.example.com', 'a.example.com')).toBe(true);
    expect(matchesHost('*.example.com', 'example.com')).toBe(false);
    expect(matchesHost('*.example.com', 'a.b.example.com')).toBe(false);
    expect(matchesHost('a.example.com', 'a.example.com')).toBe(true);
    expect(parentWildcard('a.example.com')).toBe('*.example.com');
    expect(parentWildcard('example')).toBeUndefined();
    expect(parentWildcard('*.example.com')).toBeUndefined();
  });

  it('guards :authority with a regular expression that only one label (any case, any port) passes', () => {
    const guard = authorityGuard('*.example.com');
    expect(guard.name).toBe(':authority');
    // Envoy's safe_regex matches the whole value; so does this anchored JavaScript equivalent.
    const re = new RegExp(`^(?:${guard.value})$`);
    for (const ok of ['a.example.com', 'A.Example.COM', 'a-b.example.com:8080'])
      expect(re.test(ok)).toBe(true);
    for (const no of [
      'example.com',
      'a.b.example.com',
      'aexample.com',
      '.example.com',
      'a.example.com.evil',
      'a.example.com:',
    ]) {
      expect(re.test(no)).toBe(false);
    }
  });
});

describe('createIngressTranslator', () => {
  it('gives an empty IR and no status when no Ingress is ours', () => {
    const result = translateIngress(
      objects(BASE.replaceAll('ingressClassName: skein', 'ingressClassName: nginx')),
      {
        transitionTime: T1,
      },
    );
    expect(result.ir).toBe(emptyIr);
    expect(result.statuses).toEqual([]);
  });

  it('returns the same IR objects for the same input, and keeps unchanged listeners when one Ingress changes', () => {
    const t = createIngressTranslator();
    const input = objects(BASE);
    const first = t.translate(input, { transitionTime: T1 });
    const again = t.translate(input, { transitionTime: T1, previous: first.statuses });
    expect(again.ir).toBe(first.ir);
    expect(again.statuses).toEqual(first.statuses);

    // Ingress b gets another path: its listener (8080) changes, a's (80) is the very same object.
    const b = input.ingresses.find((i) => i.metadata?.name === 'b') as Ingress;
    const changed: Ingress = JSON.parse(JSON.stringify(b).replace('"path":"/"', '"path":"/v2"'));
    const next = t.translate(
      { ...input, ingresses: input.ingresses.map((i) => (i === b ? changed : i)) },
      { transitionTime: T2, previous: again.statuses },
    );
    const [l80, l8080] = ['listener/0.0.0.0/80', 'listener/0.0.0.0/8080'].map((n) =>
      next.ir.listeners.find((l) => l.name === n),
    );
    expect(l80).toBe(first.ir.listeners.find((l) => l.name === 'listener/0.0.0.0/80'));
    expect(l8080).not.toBe(first.ir.listeners.find((l) => l.name === 'listener/0.0.0.0/8080'));
    expect(next.ir.backends).toBe(first.ir.backends);
    // Unchanged conditions keep their lastTransitionTime.
    expect(JSON.stringify(next.statuses)).not.toContain(T2);
  });

  it('gives a fresh translator and a warm one the same result after changes', () => {
    const t = createIngressTranslator();
    const input = objects(BASE);
    t.translate(input, { transitionTime: T1 });
    const shuffled = objects(BASE.replace('pathType: Prefix', 'pathType: Exact'));
    expect(JSON.stringify(t.translate(shuffled, { transitionTime: T1 }))).toBe(
      JSON.stringify(translateIngress(shuffled, { transitionTime: T1 })),
    );
  });

  it('refuses bad configuration up front, naming the option and the value', () => {
    const input = objects(BASE);
    expect(() => translateIngress(input, { transitionTime: T1, defaultAddress: 'localhost' })).toThrow(
      'Cannot translate Ingresses with defaultAddress "localhost": expected an IP address',
    );
    expect(() => translateIngress(input, { transitionTime: T1, httpPort: 443 })).toThrow(/httpsPort 443/);
    expect(() =>
      translateIngress(input, { transitionTime: T1, defaultLoadBalancerMode: 'solo' as unknown as 'shared' }),
    ).toThrow(/defaultLoadBalancerMode "solo"/);
  });

  it('uses the configured controller name', () => {
    const input = objects(BASE.replace('skein.io/ingress-controller', 'example.com/mine'));
    expect(translateIngress(input, { transitionTime: T1 }).statuses).toEqual([]);
    const mine = translateIngress(input, { transitionTime: T1, controllerName: 'example.com/mine' });
    expect(mine.statuses.map((s) => s.name)).toEqual(['a', 'b']);
  });
});
