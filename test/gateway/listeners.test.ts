import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSecret } from '../../src/gateway/certificates.js';
import { createGatewayTranslator, translateGateway } from '../../src/gateway/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet, ObjectStatus, Secret } from '../../src/sources/objects.js';

/**
 * Gateway listeners across builds: what a golden file (one input, one output) cannot show. Mirrors
 * GatewayModifyListeners and GatewayObservedGenerationBump, and checks that the listener step's memo
 * notices Secrets, ReferenceGrants and Namespaces, which it reads besides Gateways.
 */

const T1 = '2024-01-01T00:00:00Z';
const T2 = '2024-01-01T00:05:00Z';

const CERTS = new URL('./testdata/gateway-https-listeners-merge-by-sni.in.yaml', import.meta.url);

/** The Secrets of the merge-by-SNI golden input (real PEM), by name. */
function goldenSecrets(): Map<string, Secret> {
  const cache = new FileCache();
  cache.update('certs.yaml', readFileSync(CERTS, 'utf8'));
  return new Map(cache.snapshot().objects.secrets.map((s) => [s.metadata?.name ?? '', s]));
}

function load(...docs: string[]): ObjectSet {
  const cache = new FileCache();
  cache.update('in.yaml', docs.join('\n---\n'));
  const { objects, diagnostics } = cache.snapshot();
  expect(diagnostics).toEqual([]);
  return objects;
}

const CLASS = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }`;

function gateway(generation: number, listeners: string): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default, generation: ${generation} }
spec:
  gatewayClassName: skein
  listeners:
${listeners}`;
}

const HTTP = '    - { name: http, port: 8080, protocol: HTTP }';
const HTTPS = `    - name: https
      port: 8443
      protocol: HTTPS
      hostname: a.example.com
      tls: { certificateRefs: [{ name: a-example-com }] }`;
const TCP = '    - { name: tcp, port: 9000, protocol: TCP }';

function secretDoc(name: string, namespace = 'default'): string {
  const s = goldenSecrets().get(name);
  if (s === undefined) throw new Error(`no golden secret ${name}`);
  return JSON.stringify({ ...s, metadata: { name, namespace } });
}

function gatewayStatus(statuses: readonly ObjectStatus[]): {
  conditions: {
    type: string;
    status: string;
    reason: string;
    observedGeneration: number;
    lastTransitionTime: string;
  }[];
  listeners: {
    name: string;
    conditions: {
      type: string;
      status: string;
      reason: string;
      observedGeneration: number;
      lastTransitionTime: string;
    }[];
  }[];
} {
  const s = statuses.find((x) => x.kind === 'Gateway');
  if (s === undefined) throw new Error('no Gateway status');
  return s.status as never;
}

describe('Gateway listeners across builds', () => {
  it('GatewayModifyListeners: an added listener is programmed, the others keep their transition times', () => {
    const t = createGatewayTranslator();
    const before = t.translate(load(CLASS, gateway(1, HTTP)), { transitionTime: T1 });
    expect(before.ir.listeners.map((l) => l.name)).toEqual(['listener/0.0.0.0/8080']);

    // Same generation, one more listener (as a status-only test would not do, but a source can).
    const after = t.translate(
      load(CLASS, gateway(1, [HTTP, HTTPS, TCP].join('\n')), secretDoc('a-example-com')),
      {
        transitionTime: T2,
        previous: before.statuses,
      },
    );
    expect(after.ir.listeners.map((l) => `${l.name} ${l.protocol}`)).toEqual([
      'listener/0.0.0.0/8080 HTTP',
      'listener/0.0.0.0/8443 HTTPS',
      'listener/0.0.0.0/9000 TCP',
    ]);
    const gw = gatewayStatus(after.statuses);
    expect(gw.listeners.map((l) => l.name)).toEqual(['http', 'https', 'tcp']);
    for (const l of gw.listeners) {
      const programmed = l.conditions.find((c) => c.type === 'Programmed');
      expect(programmed?.status, l.name).toBe('True');
      // The http listener did not change: its conditions keep T1; the new ones are at T2.
      for (const c of l.conditions)
        expect(c.lastTransitionTime, `${l.name} ${c.type}`).toBe(l.name === 'http' ? T1 : T2);
    }

    // Removing the listeners again removes their IR listeners and their status entries.
    const removed = t.translate(load(CLASS, gateway(1, HTTP)), {
      transitionTime: T2,
      previous: after.statuses,
    });
    expect(removed.ir.listeners.map((l) => l.name)).toEqual(['listener/0.0.0.0/8080']);
    expect(removed.ir.secrets).toEqual([]);
    expect(gatewayStatus(removed.statuses).listeners.map((l) => l.name)).toEqual(['http']);
  });

  it('GatewayObservedGenerationBump: every Gateway and listener condition follows the new generation', () => {
    const t = createGatewayTranslator();
    const docs = (g: number) =>
      load(CLASS, gateway(g, [HTTP, HTTPS, TCP].join('\n')), secretDoc('a-example-com'));
    const first = t.translate(docs(1), { transitionTime: T1 });
    const bumped = t.translate(docs(2), { transitionTime: T2, previous: first.statuses });
    const gw = gatewayStatus(bumped.statuses);
    const all = [...gw.conditions, ...gw.listeners.flatMap((l) => l.conditions)];
    expect(all.length).toBeGreaterThan(10);
    for (const c of all) {
      expect(c.observedGeneration).toBe(2);
      // observedGeneration is part of a condition: a new one is a transition.
      expect(c.lastTransitionTime).toBe(T2);
    }
  });

  it('recomputes byte-identical statuses and the very same IR when nothing changed', () => {
    const cache = new FileCache();
    for (const name of ['gateway-listener-protocol-conflict', 'gateway-https-listeners-merge-by-sni']) {
      const text = readFileSync(new URL(`./testdata/${name}.in.yaml`, import.meta.url), 'utf8');
      // Both files declare the class; keep it once. Their Gateways and listeners share sockets.
      cache.update(
        `${name}.yaml`,
        name.includes('merge') ? text.replace(/^[\s\S]*?kind: GatewayClass[\s\S]*?\n---\n/, '') : text,
      );
    }
    const objects = cache.snapshot().objects;
    const t = createGatewayTranslator();
    const first = t.translate(objects, { transitionTime: T1 });
    const second = t.translate(objects, { transitionTime: T2, previous: first.statuses });
    expect(JSON.stringify(second.statuses)).toBe(JSON.stringify(first.statuses));
    expect(second.ir).toBe(first.ir);
    // A fresh translator given the previous statuses agrees byte for byte.
    const fresh = translateGateway(objects, { transitionTime: T2, previous: first.statuses });
    expect(JSON.stringify(fresh.statuses)).toBe(JSON.stringify(first.statuses));
  });

  it('notices a Secret that changes: a key that stops matching unprograms the listener, a fix restores it', () => {
    const t = createGatewayTranslator();
    const good = secretDoc('a-example-com');
    const parsed = JSON.parse(good) as Secret;
    const other = goldenSecrets().get('default-example-com');
    const bad = JSON.stringify({ ...parsed, data: { ...parsed.data, 'tls.key': other?.data?.['tls.key'] } });
    const docs = (secret: string) => load(CLASS, gateway(1, [HTTP, HTTPS].join('\n')), secret);

    const ok = t.translate(docs(good), { transitionTime: T1 });
    expect(ok.ir.listeners.map((l) => l.protocol)).toEqual(['HTTP', 'HTTPS']);
    const broken = t.translate(docs(bad), { transitionTime: T2, previous: ok.statuses });
    expect(broken.ir.listeners.map((l) => l.protocol)).toEqual(['HTTP']);
    expect(broken.ir.secrets).toEqual([]);
    const https = gatewayStatus(broken.statuses).listeners.find((l) => l.name === 'https');
    expect(https?.conditions.find((c) => c.type === 'ResolvedRefs')).toMatchObject({
      status: 'False',
      reason: 'InvalidCertificateRef',
    });
    const fixed = t.translate(docs(good), { transitionTime: T2, previous: broken.statuses });
    expect(fixed.ir.listeners.map((l) => l.protocol)).toEqual(['HTTP', 'HTTPS']);
    expect(fixed.ir.secrets.map((s) => s.name)).toEqual(['default/a-example-com']);
  });

  it('notices a ReferenceGrant that appears, and a Namespace label that changes', () => {
    const t = createGatewayTranslator();
    const crossNs = `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: skein
  listeners:
    - name: https
      port: 8443
      protocol: HTTPS
      tls: { certificateRefs: [{ name: a-example-com, namespace: certs }] }
    - name: http
      port: 8080
      protocol: HTTP
      allowedRoutes:
        namespaces: { from: Selector, selector: { matchLabels: { gateway-access: "yes" } } }`;
    const grant = `
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: gateways, namespace: certs }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: Gateway, namespace: default }]
  to: [{ group: "", kind: Secret }]`;
    const ns = (label: string) => `
apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { gateway-access: "${label}" } }`;
    const route = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: apps }
spec:
  parentRefs: [{ name: gw, namespace: default, sectionName: http }]
  rules: [{ backendRefs: [{ name: s, port: 80 }] }]`;
    const secret = secretDoc('a-example-com', 'certs');
    const routeAccepted = (statuses: readonly ObjectStatus[]) => {
      const s = statuses.find((x) => x.kind === 'HTTPRoute');
      const parents = s?.status['parents'] as { conditions: { type: string; status: string }[] }[];
      return parents[0]?.conditions.find((c) => c.type === 'Accepted')?.status;
    };

    const first = t.translate(load(CLASS, crossNs, secret, ns('no'), route), { transitionTime: T1 });
    expect(first.ir.listeners.map((l) => l.protocol)).toEqual(['HTTP']);
    expect(routeAccepted(first.statuses)).toBe('False');

    const granted = t.translate(load(CLASS, crossNs, secret, grant, ns('yes'), route), {
      transitionTime: T2,
      previous: first.statuses,
    });
    expect(granted.ir.listeners.map((l) => l.protocol)).toEqual(['HTTP', 'HTTPS']);
    expect(granted.ir.secrets.map((s) => s.name)).toEqual(['certs/a-example-com']);
    expect(routeAccepted(granted.statuses)).toBe('True');
  });
});

describe('PortUnavailable', () => {
  it('refuses a listener on a reserved socket (or the any-address over it); the others serve', () => {
    const reservedSockets = [{ address: '127.0.0.1', port: 9901, holder: "Envoy's admin interface" }];
    const gw = (address: string) => `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw-${address.replaceAll('.', '-')}, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - { name: admin-port, port: 9901, protocol: HTTP }
    - { name: udp-admin-port, port: 9901, protocol: UDP }
    - { name: http, port: 8080, protocol: HTTP }`;
    const objects = load(CLASS, gw('0.0.0.0'), gw('127.0.0.1'), gw('127.0.0.2'));
    const result = translateGateway(objects, { transitionTime: T1, reservedSockets });
    const accepted = Object.fromEntries(
      result.statuses
        .filter((s) => s.kind === 'Gateway')
        .flatMap((s) =>
          gatewayStatus([s]).listeners.map((l) => {
            const c = l.conditions.find((x) => x.type === 'Accepted');
            return [`${s.name} ${l.name}`, `${c?.status} ${c?.reason}`];
          }),
        ),
    );
    expect(accepted).toEqual({
      'gw-0-0-0-0 admin-port': 'False PortUnavailable',
      'gw-0-0-0-0 udp-admin-port': 'True Accepted',
      'gw-0-0-0-0 http': 'True Accepted',
      'gw-127-0-0-1 admin-port': 'False PortUnavailable',
      'gw-127-0-0-1 udp-admin-port': 'True Accepted',
      'gw-127-0-0-1 http': 'True Accepted',
      // Another loopback address does not overlap 127.0.0.1.
      'gw-127-0-0-2 admin-port': 'True Accepted',
      'gw-127-0-0-2 udp-admin-port': 'True Accepted',
      'gw-127-0-0-2 http': 'True Accepted',
    });
    expect(result.ir.listeners.map((l) => l.name)).toEqual([
      'listener/0.0.0.0/8080',
      'listener/0.0.0.0/9901/udp',
      'listener/127.0.0.1/8080',
      'listener/127.0.0.1/9901/udp',
      'listener/127.0.0.2/8080',
      'listener/127.0.0.2/9901',
      'listener/127.0.0.2/9901/udp',
    ]);
  });
});

describe('checkSecret', () => {
  const secrets = goldenSecrets();
  const a = secrets.get('a-example-com') as Secret;
  const b = secrets.get('b-example-com') as Secret;

  it('accepts data (base64) and stringData (plain), stringData winning', () => {
    expect(checkSecret(a)).toMatchObject({ ok: true });
    expect(checkSecret(b)).toMatchObject({ ok: true });
    const both: Secret = { ...a, stringData: { 'tls.crt': 'garbage' } };
    expect(checkSecret(both)).toEqual({ ok: false, problem: 'tls.crt holds no PEM certificate' });
  });

  it('names what is wrong without quoting the content', () => {
    expect(checkSecret({ ...a, type: 'Opaque' })).toEqual({
      ok: false,
      problem: 'has type Opaque, not kubernetes.io/tls',
    });
    expect(checkSecret({ ...a, data: { 'tls.crt': a.data?.['tls.crt'] ?? '' } })).toEqual({
      ok: false,
      problem: 'has no tls.key',
    });
    expect(checkSecret({ ...a, data: { ...a.data, 'tls.key': '!!not base64!!' } })).toEqual({
      ok: false,
      problem: 'has no tls.key',
    });
    const keyOfB = b.stringData?.['tls.key'] ?? '';
    expect(
      checkSecret({ ...withoutData(a), stringData: { 'tls.crt': a2pem(a), 'tls.key': keyOfB } }),
    ).toEqual({
      ok: false,
      problem: 'tls.key does not match the certificate in tls.crt',
    });
    expect(
      checkSecret({
        ...a,
        data: {
          ...a.data,
          'tls.key': Buffer.from('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n').toString(
            'base64',
          ),
        },
      }),
    ).toEqual({ ok: false, problem: 'tls.key does not hold a PEM private key that parses' });
  });

  it('keeps a chain (leaf first) whole', () => {
    const leaf = a2pem(a);
    const chain = `${leaf}${b.stringData?.['tls.crt'] ?? ''}`;
    const check = checkSecret({
      ...a,
      data: { ...a.data, 'tls.crt': Buffer.from(chain).toString('base64') },
    });
    expect(check.ok).toBe(true);
    if (check.ok) expect(check.secret.certificateChain).toBe(chain);
  });
});

function a2pem(s: Secret): string {
  return Buffer.from(s.data?.['tls.crt'] ?? '', 'base64').toString('utf8');
}

function withoutData(s: Secret): Secret {
  const { data: _, ...rest } = s;
  return rest;
}
