import { randomInt } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EchoReply, type EchoServer, startEchoServer } from '../../src/echo/echoServer.js';
import { getConfigDump } from '../../src/envoy/admin.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { createTestCa, type TestCa, tlsSecretYaml } from '../helpers/pki.js';
import { GATEWAY_CLASS_YAML, serviceYaml, startTestSkein, type TestSkein } from '../helpers/standalone.js';

/**
 * Ingress end to end: YAML → Skein (standalone) → a real Envoy → real echo backends on loopback, with
 * real HTTP and HTTPS requests (node-forge certificates, SNI, the client verifying the chain). Ingresses
 * pick their address and ports with annotations, as standalone mode has no load balancer. A Gateway
 * and an HTTPRoute share the directory and the Ingresses' HTTP socket.
 */

const address = randomLoopback();
/** An address only an Ingress of another class asks for: nothing may listen there. */
const otherAddress = randomLoopback();
const base = randomInt(20_000, 59_000);
const PORT = { http: base, https: base + 1 };

let ca: TestCa;
let skein: TestSkein | undefined;
const echo: Record<string, EchoServer> = {};

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  /** The echo server's reply, when it answered. */
  readonly echo: EchoReply | undefined;
}

function collect(res: http.IncomingMessage, resolve: (r: Reply) => void, reject: (e: Error) => void): void {
  let body = '';
  res.setEncoding('utf8');
  res.on('data', (c: string) => {
    body += c;
  });
  res.on('error', reject);
  res.on('end', () => {
    let parsed: EchoReply | undefined;
    if (res.statusCode === 200 && res.headers['x-backend'] !== undefined)
      parsed = JSON.parse(body) as EchoReply;
    resolve({ status: res.statusCode ?? 0, headers: res.headers, body, echo: parsed });
  });
}

/** Plain HTTP to `host` (the Host header) at the Ingress's address. */
function get(host: string, path: string, at = { address, port: PORT.http }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: at.address, port: at.port, path, headers: { host }, agent: false, timeout: 5000 },
      (res) => collect(res, resolve, reject),
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** HTTPS with SNI `host`, verifying the server's certificate against the test CA and the name. */
function getTls(host: string, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: address,
        port: PORT.https,
        servername: host,
        path,
        headers: { host },
        ca: ca.certPem,
        agent: false,
        timeout: 5000,
      },
      (res) => collect(res, resolve, reject),
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Every object in a JSON tree for which `pick` holds. */
function findAll(tree: unknown, pick: (o: Record<string, unknown>) => boolean): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const walk = (x: unknown): void => {
    if (Array.isArray(x)) for (const v of x) walk(v);
    else if (typeof x === 'object' && x !== null) {
      const o = x as Record<string, unknown>;
      if (pick(o)) out.push(o);
      for (const v of Object.values(o)) walk(v);
    }
  };
  walk(tree);
  return out;
}

const backend = (name: string) => `{ service: { name: ${name}, port: { number: 80 } } }`;

function ingressesYaml(): string {
  return `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: skein }
spec: { controller: skein.io/ingress-controller }
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: other }
spec: { controller: example.com/other-controller }
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: main
  namespace: default
  creationTimestamp: "2024-01-01T00:00:00Z"
  annotations:
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.http}"
    ingress.skein.io/https-port: "${PORT.https}"
spec:
  ingressClassName: skein
  defaultBackend: ${backend('fallback')}
  rules:
    - host: "*.wild.test"
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('green')} }]
    - host: paths.test
      http:
        paths:
          - { path: /exact, pathType: Exact, backend: ${backend('blue')} }
          - { path: /prefix/, pathType: Prefix, backend: ${backend('green')} }
          - { path: "/re/[0-9]+", pathType: ImplementationSpecific, backend: ${backend('blue')} }
    - host: lb.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: { service: { name: pair, port: { name: p } } } }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: secure
  namespace: default
  annotations:
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.http}"
    ingress.skein.io/https-port: "${PORT.https}"
    ingress.skein.io/force-https: "true"
spec:
  ingressClassName: skein
  tls:
    - { hosts: [secure.test], secretName: secure-cert }
    - { hosts: [broken.test], secretName: missing-cert }
  rules:
    - host: secure.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('blue')} }]
    - host: broken.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('blue')} }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: h2c
  namespace: default
  annotations:
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.http}"
    ingress.skein.io/backend-protocol: grpc
    ingress.skein.io/request-timeout: 7s
spec:
  ingressClassName: skein
  rules:
    - host: h2c.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('h2')} }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: theirs
  namespace: default
  annotations:
    ingress.skein.io/address: "${otherAddress}"
    ingress.skein.io/http-port: "${PORT.http}"
spec:
  ingressClassName: other
  rules:
    - host: paths.test
      http:
        paths: [{ path: /other, pathType: Prefix, backend: ${backend('green')} }]
`;
}

/** A Gateway on the Ingresses' HTTP socket, for one hostname, with an HTTPRoute. */
function gatewayYaml(): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - { name: http, protocol: HTTP, port: ${PORT.http}, hostname: gateway.test }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: via-gateway, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /green } }]
      backendRefs: [{ name: green, port: 80 }]
    - backendRefs: [{ name: blue, port: 80 }]
`;
}

describe('Ingress with a real Envoy', () => {
  beforeAll(async () => {
    ca = createTestCa();
    for (const name of ['blue', 'green', 'fallback', 'pair-1', 'pair-2']) {
      echo[name] = await startEchoServer({ name, host: '127.0.0.1' });
    }
    // A backend that speaks only cleartext HTTP/2, for ingress.skein.io/backend-protocol.
    echo['h2'] = await startEchoServer({ name: 'h2', host: '127.0.0.1', h2c: true });
    const svc = (name: string, servers: readonly EchoServer[]) =>
      serviceYaml({ name, endpoints: servers.map((s) => ({ host: s.host, port: s.port })) });
    const e = (name: string) => echo[name] as EchoServer;
    skein = await startTestSkein({
      files: {
        'services.yaml': [
          svc('blue', [e('blue')]),
          svc('green', [e('green')]),
          svc('fallback', [e('fallback')]),
          svc('pair', [e('pair-1'), e('pair-2')]),
          svc('h2', [e('h2')]),
        ].join('---\n'),
        'secrets.yaml': tlsSecretYaml('secure-cert', ca.issue(['secure.test'])),
        'ingresses.yaml': ingressesYaml(),
        'gateway.yaml': gatewayYaml(),
      },
    });
    await waitFor(
      'the Ingress to serve HTTP',
      async () => ((await get('paths.test', '/exact')).echo?.backend === 'blue' ? true : undefined),
      30_000,
      100,
    );
    await waitFor(
      'the Ingress to serve HTTPS',
      async () => ((await getTls('secure.test', '/')).status === 200 ? true : undefined),
      30_000,
      100,
    );
  });

  afterAll(async () => {
    await skein?.stop();
    for (const s of Object.values(echo)) await s.close();
  });

  it('sends requests that match no rule to the default backend, path intact', async () => {
    const r = await get('unknown.test', '/some/where?x=1');
    expect(r.status).toBe(200);
    expect(r.echo?.backend).toBe('fallback');
    expect(r.echo?.path).toBe('/some/where?x=1');
    // A host with rules but no matching path falls back too.
    expect((await get('paths.test', '/nothing-here')).echo?.backend).toBe('fallback');
  });

  it('matches a wildcard host on exactly one label', async () => {
    const one = await get('a.wild.test', '/x');
    expect(one.echo?.backend).toBe('green');
    expect(one.echo?.path).toBe('/x');
    // With a port in the Host header, and in another case: still one label.
    expect((await get(`B.Wild.Test:${PORT.http}`, '/y')).echo?.backend).toBe('green');
    // The apex and two labels are not matched by *.wild.test: they get the default backend.
    expect((await get('wild.test', '/x')).echo?.backend).toBe('fallback');
    expect((await get('a.b.wild.test', '/x')).echo?.backend).toBe('fallback');
  });

  it('matches Exact, Prefix (element-wise, trailing slash ignored) and regular-expression paths', async () => {
    const at = async (path: string) => (await get('paths.test', path)).echo?.backend;
    expect(await at('/exact')).toBe('blue');
    // Exact is exact: a trailing slash or a longer path is something else.
    expect(await at('/exact/')).toBe('fallback');
    expect(await at('/exactly')).toBe('fallback');
    // Prefix `/prefix/`: the trailing slash is ignored, and the match is by path element.
    expect(await at('/prefix')).toBe('green');
    expect(await at('/prefix/')).toBe('green');
    expect(await at('/prefix/a/b')).toBe('green');
    expect(await at('/prefixes')).toBe('fallback');
    // ImplementationSpecific is a regular expression over the whole path.
    expect(await at('/re/42')).toBe('blue');
    expect(await at('/re/42/more')).toBe('fallback');
    expect(await at('/re/abc')).toBe('fallback');
  });

  it('serves only Ingresses of its own class', async () => {
    // The other class's Ingress asked for /other on paths.test: not served here.
    expect((await get('paths.test', '/other')).echo?.backend).toBe('fallback');
    // Nor does anything listen on the address only it asked for.
    await expect(get('paths.test', '/other', { address: otherAddress, port: PORT.http })).rejects.toThrow(
      /ECONNREFUSED/,
    );
    const statuses = skein?.skein.controlPlane.statuses ?? [];
    expect(statuses.filter((s) => s.kind === 'Ingress').map((s) => s.name)).toEqual([
      'h2c',
      'main',
      'secure',
    ]);
  });

  it('balances across the endpoints of a Service (port by name)', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const r = await get('lb.test', `/lb/${i}`);
      expect(r.status).toBe(200);
      seen.add(r.echo?.backend ?? '');
    }
    expect([...seen].sort()).toEqual(['pair-1', 'pair-2']);
  });

  it('redirects plain HTTP to HTTPS with force-https, and serves HTTPS with the right certificate', async () => {
    const r = await get('secure.test', '/account?tab=1');
    expect(r.status).toBe(308);
    expect(r.headers.location).toBe(`https://secure.test:${PORT.https}/account?tab=1`);
    const s = await getTls('secure.test', '/account?tab=1');
    expect(s.status).toBe(200);
    expect(s.echo?.backend).toBe('blue');
    expect(s.echo?.path).toBe('/account?tab=1');
  });

  it('does not serve a host whose TLS Secret is missing, over TLS or in plain text; other hosts work', async () => {
    // No certificate covers broken.test, so the handshake fails.
    await expect(getTls('broken.test', '/')).rejects.toThrow();
    // Plain HTTP for it gets 503, never the backend.
    const plain = await get('broken.test', '/');
    expect(plain.status).toBe(503);
    expect(plain.echo).toBeUndefined();
    // The same Ingress's other host, and the other Ingress, keep working.
    expect((await getTls('secure.test', '/')).echo?.backend).toBe('blue');
    expect((await get('a.wild.test', '/')).echo?.backend).toBe('green');
    // Reported: a status condition and a diagnostic naming the Ingress, the host and the Secret.
    const status = skein?.skein.controlPlane.statuses.find(
      (s) => s.kind === 'Ingress' && s.name === 'secure',
    );
    expect(JSON.stringify(status?.status)).toMatch(
      /Secret default\/missing-cert not found: host broken\.test/,
    );
    const diagnostics = skein?.skein.controlPlane.lastBuild?.diagnostics ?? [];
    const d = diagnostics.find((x) => x.code === 'SKEIN_INGRESS_TLS_SECRET');
    expect(d?.object).toBe('Ingress/default/secure');
    expect(d?.message).toContain('broken.test');
    expect(d?.message).toContain('default/missing-cert');
  });

  it('speaks h2c to the backend with backend-protocol grpc, and sets the request timeout', async () => {
    const r = await get('h2c.test', '/pkg.Service/Method');
    expect(r.status).toBe(200);
    expect(r.echo?.backend).toBe('h2');
    expect(r.echo?.path).toBe('/pkg.Service/Method');
    const adminUrl = skein?.skein.envoy?.adminUrl;
    if (adminUrl === undefined) throw new Error('no Envoy admin');
    // The route of the h2c Ingress, as Envoy holds it: the 7 s timeout, to the h2c cluster.
    const routes = findAll(
      await getConfigDump(adminUrl),
      (o) => o['name'] === 'ingress/default/h2c/rule/0/match/0',
    );
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) expect(r['route']).toMatchObject({ cluster: 'default/h2/80/h2c', timeout: '7s' });
  });

  it('serves Ingresses and an HTTPRoute side by side on one socket, without conflicts', async () => {
    expect((await get('gateway.test', '/green/1')).echo?.backend).toBe('green');
    expect((await get('gateway.test', '/other')).echo?.backend).toBe('blue');
    expect((await get('paths.test', '/exact')).echo?.backend).toBe('blue');
    expect((await get('unknown.test', '/')).echo?.backend).toBe('fallback');
    const diagnostics = skein?.skein.controlPlane.lastBuild?.diagnostics ?? [];
    expect(diagnostics.filter((d) => d.code === 'SKEIN_MERGE_CONFLICT')).toEqual([]);
    const route = skein?.skein.controlPlane.statuses.find((s) => s.kind === 'HTTPRoute');
    expect(JSON.stringify(route?.status)).toContain('"reason":"Accepted"');
  });
});
