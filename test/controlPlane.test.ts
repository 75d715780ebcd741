import { describe, expect, it } from 'vitest';
import { ControlPlane } from '../src/controlPlane.js';
import { silentLogger } from '../src/log.js';
import { FileCache } from '../src/sources/file/FileCache.js';
import type { ObjectSet, ObjectStatus } from '../src/sources/objects.js';
import { TypeUrl } from '../src/xds/proto.js';
import { createIrTranslator } from '../src/xds/translate/translate.js';
import { createTestCa, tlsSecretYaml } from './helpers/pki.js';

function objects(yaml: string): ObjectSet {
  const cache = new FileCache();
  cache.update('in.yaml', yaml);
  const { objects: o, diagnostics } = cache.snapshot();
  expect(diagnostics).toEqual([]);
  return o;
}

const CLASSES = `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: skein }
spec: { controller: skein.io/ingress-controller }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
`;

const gateway = (listeners: string, hostnames = '[shop.example.com]'): string => `
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: 127.0.0.1 }]
  listeners: ${listeners}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  hostnames: ${hostnames}
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
`;

const ingress = (name: string, spec: string, annotations = 'ingress.skein.io/address: 127.0.0.1'): string => `
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
  namespace: default
  annotations: { ${annotations} }
spec:
  ingressClassName: skein
${spec}
`;

const rule = (host: string): string => `
    - host: ${host}
      http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }] }`;

function statusOf(statuses: readonly ObjectStatus[], kind: string, name: string): Record<string, unknown> {
  const s = statuses.find((x) => x.kind === kind && x.name === name);
  if (s === undefined) throw new Error(`no status for ${kind} ${name}`);
  return s.status as Record<string, unknown>;
}

function conditionOf(status: Record<string, unknown>, type: string): Record<string, unknown> | undefined {
  return (status['conditions'] as Record<string, unknown>[]).find((c) => c['type'] === type);
}

describe('ControlPlane publishing', () => {
  it('publishes every node group or none: an inconsistent gRPC snapshot keeps the Envoy group on its last config too', () => {
    const real = createIrTranslator();
    let breakGrpc = false;
    const cp = new ControlPlane({
      logger: silentLogger,
      envoyTranslator: {
        translate(ir, options) {
          const specs = real.translate(ir, options);
          if (!breakGrpc || options.flavor !== 'grpc') return specs;
          // A route configuration no listener names: the consistency check refuses the gRPC snapshot.
          return [
            ...specs,
            {
              typeUrl: TypeUrl.RouteConfiguration,
              name: 'orphan',
              message: { name: 'orphan' },
              deps: [],
              children: [],
            },
          ];
        },
      },
    });
    const v1 = objects(`${CLASSES}${gateway('[{ name: http, protocol: HTTP, port: 8080 }]')}`);
    const first = cp.apply(v1);
    expect(first.published).toBe(true);
    const envoy1 = cp.cache.getSnapshot('envoy');
    const grpc1 = cp.cache.getSnapshot('grpc');
    const ir1 = cp.ir;
    const statuses1 = cp.statuses;
    expect(envoy1).toBeDefined();

    // v2 changes the Envoy config (a new port), but the gRPC group's snapshot is inconsistent.
    breakGrpc = true;
    const v2 = objects(`${CLASSES}${gateway('[{ name: http, protocol: HTTP, port: 8081 }]')}`);
    const second = cp.apply(v2);
    expect(second.published).toBe(false);
    expect(second.errors).toEqual([
      `SKEIN_XDS_ORPHAN: grpc snapshot: ${TypeUrl.RouteConfiguration} "orphan" is not referenced by any listener`,
    ]);
    expect(cp.cache.getSnapshot('envoy')).toBe(envoy1);
    expect(cp.cache.getSnapshot('grpc')).toBe(grpc1);
    // What the statuses and the IR describe is what is published: the first build.
    expect(cp.ir).toBe(ir1);
    expect(cp.statuses).toBe(statuses1);
    expect(cp.lastBuild?.published).toBe(false);

    // Once both are consistent, both go out.
    breakGrpc = false;
    expect(cp.apply(v2).published).toBe(true);
    expect(cp.cache.getSnapshot('envoy')).not.toBe(envoy1);
    expect(cp.ir?.listeners.map((l) => l.name)).toEqual(['listener/127.0.0.1/8081']);
  });

  it("keeps Envoy's admin and Skein's status sockets reserved for Ingresses when an embedder reserves more", () => {
    const cp = new ControlPlane({
      logger: silentLogger,
      reservedSockets: [{ address: '127.0.0.1', port: 9901, holder: "Envoy's admin interface" }],
      ingress: { reservedSockets: [{ address: '127.0.0.1', port: 7000, holder: 'the embedder' }] },
    });
    const report = cp.apply(
      objects(
        `${CLASSES}${ingress('admin', `  rules: ${rule('a.example.com')}`, 'ingress.skein.io/address: 127.0.0.1, ingress.skein.io/http-port: "9901"')}${ingress('mine', `  rules: ${rule('b.example.com')}`, 'ingress.skein.io/address: 127.0.0.1, ingress.skein.io/http-port: "7000"')}`,
      ),
    );
    expect(report.published).toBe(true);
    expect(cp.ir?.listeners).toEqual([]);
    for (const [name, holder] of [
      ['admin', "127.0.0.1:9901 is taken by Envoy's admin interface"],
      ['mine', '127.0.0.1:7000 is taken by the embedder'],
    ] as const) {
      expect(conditionOf(statusOf(cp.statuses, 'Ingress', name), 'Programmed')).toMatchObject({
        status: 'False',
        reason: 'PortUnavailable',
        message: expect.stringContaining(holder),
      });
    }
  });
});

describe('merge conflicts on Ingress status', () => {
  it('puts a hostname a Gateway listener takes on the Ingress, naming it, the file and the field', () => {
    const cp = new ControlPlane({ logger: silentLogger });
    const report = cp.apply(
      objects(
        `${CLASSES}${gateway('[{ name: http, protocol: HTTP, port: 80 }]')}${ingress('shop', `  rules: ${rule('other.example.com')}${rule('shop.example.com')}`)}`,
      ),
    );
    expect(report.published).toBe(true);
    const status = statusOf(cp.statuses, 'Ingress', 'shop');
    expect(conditionOf(status, 'Conflicted')).toMatchObject({
      status: 'True',
      reason: 'HostnameConflict',
      message:
        "host shop.example.com on 127.0.0.1:80 (HTTP) is served by a Gateway listener (the Gateway API wins): this Ingress's rules for it are not served there",
    });
    // other.example.com is still the Ingress's.
    expect(conditionOf(status, 'Programmed')).toMatchObject({ status: 'True' });
    expect(report.diagnostics).toContainEqual({
      code: 'SKEIN_MERGE_CONFLICT',
      severity: 'warning',
      origin: 'in.yaml#5',
      object: 'Ingress/default/shop',
      field: 'spec.rules[1].host',
      message: expect.stringContaining('host shop.example.com on 127.0.0.1:80'),
    });
    // Not reported a second time under the IR's name.
    expect(report.diagnostics.filter((d) => d.code === 'SKEIN_MERGE_CONFLICT')).toHaveLength(1);
  });

  it("puts the catch-all a Gateway listener without hostname takes on the Ingress's default backend", () => {
    const cp = new ControlPlane({ logger: silentLogger });
    const report = cp.apply(
      objects(
        `${CLASSES}${gateway('[{ name: http, protocol: HTTP, port: 80 }]', '[]')}${ingress(
          'shop',
          `  defaultBackend: { service: { name: web, port: { number: 80 } } }\n  rules: ${rule('shop.example.com')}`,
        )}`,
      ),
    );
    const status = statusOf(cp.statuses, 'Ingress', 'shop');
    expect(conditionOf(status, 'Conflicted')).toMatchObject({ status: 'True', reason: 'HostnameConflict' });
    expect(conditionOf(status, 'Programmed')).toMatchObject({ status: 'True' });
    expect(report.diagnostics).toContainEqual(
      expect.objectContaining({
        code: 'SKEIN_MERGE_CONFLICT',
        object: 'Ingress/default/shop',
        field: 'spec.defaultBackend',
        message: expect.stringContaining(
          'a Gateway listener without hostname takes every host no Ingress names',
        ),
      }),
    );
  });

  it('says Programmed False when a Gateway takes every host of the Ingress', () => {
    const cp = new ControlPlane({ logger: silentLogger });
    cp.apply(
      objects(
        `${CLASSES}${gateway('[{ name: http, protocol: HTTP, port: 80 }]')}${ingress('shop', `  rules: ${rule('shop.example.com')}`)}`,
      ),
    );
    const status = statusOf(cp.statuses, 'Ingress', 'shop');
    expect(conditionOf(status, 'Programmed')).toMatchObject({
      status: 'False',
      reason: 'HostnameConflict',
      message: 'HTTP on 127.0.0.1:80 is not served: Gateway listeners serve every host it has there',
    });
    expect(status['loadBalancer']).toEqual({});
  });

  it('says Programmed False, PortUnavailable, when a Gateway listener of another protocol holds the socket', () => {
    const cp = new ControlPlane({ logger: silentLogger });
    const report = cp.apply(
      objects(
        `${CLASSES}${gateway('[{ name: tcp, protocol: TCP, port: 80 }]')}${ingress('shop', `  rules: ${rule('shop.example.com')}`)}`,
      ),
    );
    const status = statusOf(cp.statuses, 'Ingress', 'shop');
    expect(conditionOf(status, 'Programmed')).toMatchObject({
      status: 'False',
      reason: 'PortUnavailable',
      message:
        "HTTP on 127.0.0.1:80 is not served: a Gateway listener serves another protocol there (the Gateway API's listeners come first)",
    });
    expect(report.diagnostics).toContainEqual(
      expect.objectContaining({
        code: 'SKEIN_MERGE_CONFLICT',
        object: 'Ingress/default/shop',
        field: 'metadata.annotations[ingress.skein.io/http-port]',
      }),
    );
  });

  it("puts a certificate server name a Gateway's certificate takes on the Ingress's spec.tls entry", () => {
    const cert = createTestCa().issue(['shop.example.com']);
    const secret = (name: string): string => `\n---\n${tlsSecretYaml(name, cert)}`;
    const cp = new ControlPlane({ logger: silentLogger });
    const report = cp.apply(
      objects(
        `${CLASSES}${secret('gw-cert')}${secret('shop-cert')}${gateway(
          '[{ name: https, protocol: HTTPS, port: 443, hostname: shop.example.com, tls: { certificateRefs: [{ name: gw-cert }] } }]',
        )}${ingress('shop', `  tls: [{ hosts: [shop.example.com], secretName: shop-cert }]\n  rules: ${rule('shop.example.com')}`)}`,
      ),
    );
    expect(report.published).toBe(true);
    const conflicted = conditionOf(statusOf(cp.statuses, 'Ingress', 'shop'), 'Conflicted');
    expect(conflicted).toMatchObject({ status: 'True', reason: 'HostnameConflict' });
    expect(conflicted?.['message']).toContain(
      "spec.tls[0]: host shop.example.com on 127.0.0.1:443 is served with a Gateway's certificate, not with Secret default/shop-cert (the Gateway API wins)",
    );
    expect(report.diagnostics).toContainEqual(
      expect.objectContaining({
        code: 'SKEIN_MERGE_CONFLICT',
        object: 'Ingress/default/shop',
        field: 'spec.tls[0]',
      }),
    );
  });
});
