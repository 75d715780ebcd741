import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import { loadDirectory } from '../../src/sources/file/loadDirectory.js';
import { type Diagnostic, emptyObjectSet, knownKinds } from '../../src/sources/objects.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'skein-kinds-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const GW = 'gateway.networking.k8s.io';

/** One valid object of every kind added for GRPC/TLS/TCP/UDP routes, policies, Secrets and Ingress. */
const valid = `
apiVersion: ${GW}/v1
kind: GRPCRoute
metadata: { name: grpc }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [grpc.example.com]
  rules:
    - matches:
        - method: { service: helloworld.Greeter, method: SayHello }
          headers: [{ name: x-tenant, value: a }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-a, value: b }] }
      backendRefs: [{ name: greeter, port: 50051 }]
---
apiVersion: ${GW}/v1beta1
kind: ReferenceGrant
metadata: { name: from-web, namespace: backends }
spec:
  from: [{ group: ${GW}, kind: HTTPRoute, namespace: web }]
  to: [{ group: "", kind: Service }]
---
apiVersion: ${GW}/v1
kind: ReferenceGrant
metadata: { name: certs, namespace: backends }
spec:
  from: [{ group: ${GW}, kind: Gateway, namespace: edge }]
  to: [{ group: "", kind: Secret, name: tls }]
---
apiVersion: ${GW}/v1alpha2
kind: TLSRoute
metadata: { name: passthrough }
spec:
  parentRefs: [{ name: edge, sectionName: tls }]
  rules: [{ backendRefs: [{ name: db, port: 5432 }] }]
---
apiVersion: ${GW}/v1
kind: TLSRoute
metadata: { name: sni }
spec:
  hostnames: ["*.example.com"]
  rules: [{ backendRefs: [{ name: db, port: 5432 }] }]
---
apiVersion: ${GW}/v1alpha2
kind: TCPRoute
metadata: { name: tcp }
spec:
  parentRefs: [{ name: edge, sectionName: tcp }]
  rules: [{ backendRefs: [{ name: redis, port: 6379, weight: 1 }] }]
---
apiVersion: ${GW}/v1alpha2
kind: UDPRoute
metadata: { name: dns }
spec:
  rules: [{ backendRefs: [{ name: coredns, port: 53 }] }]
---
apiVersion: ${GW}/v1
kind: BackendTLSPolicy
metadata: { name: upstream }
spec:
  targetRefs: [{ group: "", kind: Service, name: web, sectionName: https }]
  validation:
    hostname: web.internal
    caCertificateRefs: [{ group: "", kind: ConfigMap, name: ca }]
    subjectAltNames: [{ type: URI, uri: "spiffe://cluster.local/ns/default/sa/web" }]
---
apiVersion: ${GW}/v1alpha3
kind: BackendTLSPolicy
metadata: { name: system-ca }
spec:
  targetRefs: [{ group: "", kind: Service, name: api }]
  validation: { hostname: api.internal, wellKnownCACertificates: System }
---
apiVersion: v1
kind: Secret
metadata: { name: tls }
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t
  tls.key: LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t
---
apiVersion: v1
kind: Secret
metadata: { name: plain, namespace: apps }
stringData: { password: hunter2 }
---
apiVersion: v1
kind: Namespace
metadata:
  name: web
  namespace: ignored
  labels: { team: shop, kubernetes.io/metadata.name: wrong }
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: shop }
spec:
  ingressClassName: skein
  tls: [{ hosts: [shop.example.com], secretName: tls }]
  rules:
    - host: shop.example.com
      http:
        paths:
          - { path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }
          - { path: /api, pathType: Exact, backend: { service: { name: api, port: { name: http } } } }
    - http:
        paths:
          - { pathType: ImplementationSpecific, backend: { resource: { apiGroup: example.com, kind: Bucket, name: static } } }
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: skein }
spec:
  controller: skein.io/ingress-controller
  parameters: { apiGroup: skein.io, kind: Params, name: p, scope: Namespace, namespace: skein-system }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: ca }
data:
  ca.crt: "-----BEGIN CERTIFICATE-----"
binaryData:
  blob: AAEC
`;

const names = (list: readonly { metadata?: { namespace?: string; name?: string } }[]): string[] =>
  list.map((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`);

describe('the kinds for GRPC, TLS, TCP and UDP routes, policies, Secrets and Ingress', () => {
  it('read from multi-document YAML, with defaults, sorted, and without diagnostics', async () => {
    await writeFile(path.join(dir, 'all.yaml'), valid);
    const { objects, diagnostics } = await loadDirectory(dir, { logger: silentLogger });
    expect(diagnostics).toEqual([]);
    expect(names(objects.grpcRoutes)).toEqual(['default/grpc']);
    expect(names(objects.referenceGrants)).toEqual(['backends/certs', 'backends/from-web']);
    expect(names(objects.tlsRoutes)).toEqual(['default/passthrough', 'default/sni']);
    expect(names(objects.tcpRoutes)).toEqual(['default/tcp']);
    expect(names(objects.udpRoutes)).toEqual(['default/dns']);
    expect(names(objects.backendTLSPolicies)).toEqual(['default/system-ca', 'default/upstream']);
    expect(names(objects.secrets)).toEqual(['apps/plain', 'default/tls']);
    expect(names(objects.ingresses)).toEqual(['default/shop']);
    // Cluster-scoped kinds carry no namespace, whatever the YAML says.
    expect(names(objects.namespaces)).toEqual(['/web']);
    expect(names(objects.ingressClasses)).toEqual(['/skein']);
    expect(names(objects.configMaps)).toEqual(['default/ca']);
    expect(objects.configMaps[0]?.data?.['ca.crt']).toBe('-----BEGIN CERTIFICATE-----');
    expect(objects.origins.get('Namespace//web')).toBe('all.yaml#11');
    expect(objects.origins.get('GRPCRoute/default/grpc')).toBe('all.yaml#0');

    // Both ReferenceGrant versions load, as one type (v1).
    expect(objects.referenceGrants.map((g) => g.apiVersion)).toEqual([`${GW}/v1`, `${GW}/v1`]);
    expect(objects.referenceGrants[1]?.spec?.to[0]?.kind).toBe('Service');
    // Route kinds served in several versions keep the version they were written in (status goes back in it).
    expect(objects.tlsRoutes.map((r) => r.apiVersion)).toEqual([`${GW}/v1alpha2`, `${GW}/v1`]);
    expect(objects.backendTLSPolicies.map((p) => p.apiVersion)).toEqual([`${GW}/v1alpha3`, `${GW}/v1`]);
    // A Namespace carries the name label the API server sets, over any value given.
    expect(objects.namespaces[0]?.metadata?.labels).toEqual({
      team: 'shop',
      'kubernetes.io/metadata.name': 'web',
    });
    // Secret data stays as written (base64); stringData stays plain. Translators decode.
    expect(objects.secrets[1]?.data?.['tls.crt']).toBe('LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t');
    expect(objects.secrets[0]?.stringData).toEqual({ password: 'hunter2' });
    expect(Object.isFrozen(objects.secrets[1]?.data)).toBe(true);
    expect(objects.grpcRoutes[0]?.spec.rules?.[0]?.matches?.[0]?.method?.service).toBe('helloworld.Greeter');
    expect(objects.ingresses[0]?.spec?.rules?.[0]?.http?.paths[1]?.backend.service?.port?.name).toBe('http');
  });

  it('every ObjectSet list has an entry in emptyObjectSet and a known kind', () => {
    expect(Object.keys(knownKinds)).toHaveLength(18);
    const cache = new FileCache();
    cache.update('all.yaml', valid);
    const snap = cache.snapshot().objects;
    expect(Object.keys(snap).sort()).toEqual(Object.keys(emptyObjectSet).sort());
  });

  it('reports a v1beta1 and a v1 ReferenceGrant of the same name as one object declared twice', () => {
    const grant = (version: string): string =>
      `apiVersion: ${GW}/${version}\nkind: ReferenceGrant\nmetadata: { name: g }\nspec:\n  from: [{ group: ${GW}, kind: HTTPRoute, namespace: a }]\n  to: [{ group: "", kind: Service }]\n`;
    const cache = new FileCache();
    cache.update('a.yaml', grant('v1beta1'));
    cache.update('b.yaml', grant('v1'));
    const { objects, diagnostics } = cache.snapshot();
    expect(objects.referenceGrants).toHaveLength(1);
    expect(diagnostics).toEqual([
      expect.objectContaining({
        code: 'SKEIN_SOURCE_DUPLICATE_OBJECT',
        origin: 'b.yaml#0',
        object: 'ReferenceGrant/default/g',
      }),
    ]);
  });
});

/** One invalid object per kind, with the diagnostic it must produce. */
const invalid: {
  name: string;
  yaml: string;
  object: string;
  field: string;
  code: string;
  message: RegExp;
}[] = [
  {
    name: 'GRPCRoute: an Exact service with a slash (CEL)',
    yaml: `apiVersion: ${GW}/v1\nkind: GRPCRoute\nmetadata: { name: g }\nspec:\n  rules:\n    - matches: [{ method: { service: "a/b" } }]\n`,
    object: 'GRPCRoute/default/g',
    field: 'spec.rules[0].matches[0].method.service',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /gRPC service name/,
  },
  {
    name: 'GRPCRoute: a filter type HTTPRoute has but GRPCRoute does not',
    yaml: `apiVersion: ${GW}/v1\nkind: GRPCRoute\nmetadata: { name: g, namespace: n }\nspec:\n  rules:\n    - filters: [{ type: URLRewrite, urlRewrite: {} }]\n`,
    object: 'GRPCRoute/n/g',
    field: 'spec.rules[0].filters[0].type',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /must be one of ResponseHeaderModifier, RequestHeaderModifier, RequestMirror, ExtensionRef/,
  },
  {
    name: 'GRPCRoute: a method match with neither service nor method',
    yaml: `apiVersion: ${GW}/v1\nkind: GRPCRoute\nmetadata: { name: g }\nspec:\n  rules:\n    - matches: [{ method: { type: Exact } }]\n`,
    object: 'GRPCRoute/default/g',
    field: 'spec.rules[0].matches[0].method',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /one or both of 'service' or 'method'/,
  },
  {
    name: 'ReferenceGrant: a from entry without namespace',
    yaml: `apiVersion: ${GW}/v1beta1\nkind: ReferenceGrant\nmetadata: { name: r }\nspec:\n  from: [{ group: ${GW}, kind: HTTPRoute }]\n  to: [{ group: "", kind: Service }]\n`,
    object: 'ReferenceGrant/default/r',
    field: 'spec.from[0].namespace',
    code: 'SKEIN_SOURCE_MISSING_FIELD',
    message: /is required/,
  },
  {
    name: 'TLSRoute v1: no hostnames',
    yaml: `apiVersion: ${GW}/v1\nkind: TLSRoute\nmetadata: { name: t }\nspec:\n  rules: [{ backendRefs: [{ name: db, port: 5432 }] }]\n`,
    object: 'TLSRoute/default/t',
    field: 'spec.hostnames',
    code: 'SKEIN_SOURCE_MISSING_FIELD',
    message: /is required/,
  },
  {
    name: 'TLSRoute v1alpha2: an IP is allowed, a backend without port is not',
    yaml: `apiVersion: ${GW}/v1alpha2\nkind: TLSRoute\nmetadata: { name: t }\nspec:\n  hostnames: ["10.0.0.1"]\n  rules: [{ backendRefs: [{ name: db }] }]\n`,
    object: 'TLSRoute/default/t',
    field: 'spec.rules[0].backendRefs[0].port',
    code: 'SKEIN_SOURCE_MISSING_FIELD',
    message: /is required for a Service reference/,
  },
  {
    name: 'TLSRoute v1: an IP as SNI hostname (CEL)',
    yaml: `apiVersion: ${GW}/v1\nkind: TLSRoute\nmetadata: { name: t }\nspec:\n  hostnames: ["10.0.0.1"]\n  rules: [{ backendRefs: [{ name: db, port: 1 }] }]\n`,
    object: 'TLSRoute/default/t',
    field: 'spec.hostnames[0]',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /not an IP/,
  },
  {
    name: 'TCPRoute: a rule without backends',
    yaml: `apiVersion: ${GW}/v1alpha2\nkind: TCPRoute\nmetadata: { name: t }\nspec:\n  rules: [{ backendRefs: [] }]\n`,
    object: 'TCPRoute/default/t',
    field: 'spec.rules[0].backendRefs',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /at least one backend/,
  },
  {
    name: 'UDPRoute: a port out of range',
    yaml: `apiVersion: ${GW}/v1alpha2\nkind: UDPRoute\nmetadata: { name: u }\nspec:\n  rules: [{ backendRefs: [{ name: dns, port: 70000 }] }]\n`,
    object: 'UDPRoute/default/u',
    field: 'spec.rules[0].backendRefs[0].port',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /must be a port in 1\.\.65535 \(line 5\)/,
  },
  {
    name: 'ConfigMap: a key in both data and binaryData',
    yaml: 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\ndata: { k: v }\nbinaryData: { k: AAEC }\n',
    object: 'ConfigMap/default/c',
    field: 'binaryData.k',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /must not be in both data and binaryData/,
  },
  {
    name: 'BackendTLSPolicy: both CA refs and well-known CAs (CEL)',
    yaml: `apiVersion: ${GW}/v1\nkind: BackendTLSPolicy\nmetadata: { name: b }\nspec:\n  targetRefs: [{ group: "", kind: Service, name: web }]\n  validation:\n    hostname: web\n    wellKnownCACertificates: System\n    caCertificateRefs: [{ group: "", kind: ConfigMap, name: ca }]\n`,
    object: 'BackendTLSPolicy/default/b',
    field: 'spec.validation.wellKnownCACertificates',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /must not be set together with caCertificateRefs/,
  },
  {
    name: 'BackendTLSPolicy: a wildcard hostname',
    yaml: `apiVersion: ${GW}/v1alpha3\nkind: BackendTLSPolicy\nmetadata: { name: b }\nspec:\n  targetRefs: [{ group: "", kind: Service, name: web }]\n  validation: { hostname: "*.web", wellKnownCACertificates: System }\n`,
    object: 'BackendTLSPolicy/default/b',
    field: 'spec.validation.hostname',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /without wildcard/,
  },
  {
    name: 'Secret: a TLS Secret without its key',
    yaml: 'apiVersion: v1\nkind: Secret\nmetadata: { name: s }\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Y2VydA==\n',
    object: 'Secret/default/s',
    field: 'data.tls.key',
    code: 'SKEIN_SOURCE_MISSING_FIELD',
    message: /is required for a Secret of type kubernetes.io\/tls/,
  },
  {
    name: 'Namespace: a name that is not a DNS label',
    yaml: 'apiVersion: v1\nkind: Namespace\nmetadata: { name: a.b }\n',
    object: 'Namespace//a.b',
    field: 'metadata.name',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /DNS label/,
  },
  {
    name: 'Namespace: a label value that is too long',
    yaml: `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n  labels: { team: ${'x'.repeat(64)} }\n`,
    object: 'Namespace//n',
    field: 'metadata.labels.team',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /label value/,
  },
  {
    name: 'Ingress: a Prefix path that is not absolute',
    yaml: 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: i }\nspec:\n  rules:\n    - http:\n        paths: [{ path: api, pathType: Prefix, backend: { service: { name: api, port: { number: 80 } } } }]\n',
    object: 'Ingress/default/i',
    field: 'spec.rules[0].http.paths[0].path',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /must be an absolute path/,
  },
  {
    name: 'Ingress: a path without pathType',
    yaml: 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: i }\nspec:\n  rules:\n    - http:\n        paths: [{ path: /, backend: { service: { name: api, port: { number: 80 } } } }]\n',
    object: 'Ingress/default/i',
    field: 'spec.rules[0].http.paths[0].pathType',
    code: 'SKEIN_SOURCE_MISSING_FIELD',
    message: /is required/,
  },
  {
    name: 'Ingress: a service backend with both port name and number',
    yaml: 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: i }\nspec:\n  defaultBackend: { service: { name: api, port: { name: http, number: 80 } } }\n',
    object: 'Ingress/default/i',
    field: 'spec.defaultBackend.service.port',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /cannot set both port name and port number/,
  },
  {
    name: 'Ingress: an IP address as host',
    yaml: 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: i }\nspec:\n  rules: [{ host: 10.1.2.3 }]\n',
    object: 'Ingress/default/i',
    field: 'spec.rules[0].host',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /not an IP address/,
  },
  {
    name: 'Ingress: neither rules nor a default backend',
    yaml: 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: { name: i }\nspec: { ingressClassName: skein }\n',
    object: 'Ingress/default/i',
    field: 'spec',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /either defaultBackend or rules/,
  },
  {
    name: 'IngressClass: a controller without a domain',
    yaml: 'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: { name: c }\nspec: { controller: skein }\n',
    object: 'IngressClass//c',
    field: 'spec.controller',
    code: 'SKEIN_SOURCE_INVALID_FIELD',
    message: /domain-prefixed path/,
  },
];

describe('objects of the new kinds that the API server would reject', () => {
  it.each(invalid)('$name', ({ yaml, object, field, code, message }) => {
    const cache = new FileCache();
    cache.update('bad.yaml', `${yaml}---\n${yaml.replace(/name: (\w)/, 'name: other-$1')}`);
    const { objects, diagnostics } = cache.snapshot();
    // The object is dropped; the diagnostic names file, document, object and field.
    expect(objects.origins.size).toBe(0);
    const d = diagnostics.find((x: Diagnostic) => x.field === field && x.origin === 'bad.yaml#0');
    expect(d, JSON.stringify(diagnostics)).toMatchObject({ code, severity: 'error', object });
    expect(d?.message).toMatch(message);
    expect(diagnostics.some((x) => x.origin === 'bad.yaml#1')).toBe(true);
  });

  it('accepts values the schema allows but Skein may not support', () => {
    const cache = new FileCache();
    cache.update(
      'ok.yaml',
      `apiVersion: ${GW}/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  rules:
    - matches: [{ method: { type: RegularExpression, service: "(a|b)/.*" } }]
      filters: [{ type: ExtensionRef, extensionRef: { group: example.com, kind: Thing, name: t } }]
      backendRefs: [{ group: example.com, kind: Backend, name: b }]
---
apiVersion: v1
kind: Secret
metadata: { name: custom }
type: example.com/custom
data: { "": "" }
`,
    );
    const snap = cache.snapshot();
    expect(snap.objects.grpcRoutes).toHaveLength(1);
    // An empty key is not a valid Secret key.
    expect(snap.diagnostics).toEqual([
      expect.objectContaining({
        code: 'SKEIN_SOURCE_INVALID_FIELD',
        object: 'Secret/default/custom',
        field: 'data.',
      }),
    ]);
  });

  it('never puts Secret values in diagnostics', () => {
    const marker = 'TOPSECRETVALUE';
    const cache = new FileCache();
    // Two documents: the first has values of the wrong type, the second bad values of the right type.
    cache.update(
      's.yaml',
      `apiVersion: v1
kind: Secret
metadata: { name: s }
data:
  tls.key: 12345
stringData:
  other: [${marker}]
---
apiVersion: v1
kind: Secret
metadata: { name: t }
type: kubernetes.io/tls
data:
  tls.crt: "${marker}!!"
  "bad key": ${Buffer.from(marker).toString('base64')}
`,
    );
    const { objects, diagnostics } = cache.snapshot();
    expect(objects.secrets).toEqual([]);
    expect(diagnostics.map((d) => `${d.object} ${d.field}`).sort()).toEqual([
      'Secret/default/s data.tls.key',
      'Secret/default/s stringData.other',
      'Secret/default/t data.bad key',
      'Secret/default/t data.tls.crt',
      'Secret/default/t data.tls.key',
    ]);
    const text = JSON.stringify(diagnostics);
    expect(text).not.toContain(marker);
    expect(text).not.toContain(Buffer.from(marker).toString('base64'));
    expect(text).not.toContain('12345');
  });
});
