import { randomInt } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EchoReply, type EchoServer, startEchoServer } from '../../src/echo/echoServer.js';
import { getConfigDump } from '../../src/envoy/admin.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { createTestCa, type TestCa, type TestCert, tlsSecretYaml } from '../helpers/pki.js';
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
const PORT = {
  http: base,
  https: base + 1,
  /** An Ingress without a default backend, alone on its socket: what matches nothing gets 404. */
  strict: base + 2,
  /** A wildcard host with TLS and a default backend, on sockets of its own. */
  wildHttp: base + 3,
  wildHttps: base + 4,
};

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
function getTls(host: string, path: string, port = PORT.https): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: address,
        port,
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

/**
 * How a TLS handshake with SNI `host` ends: `error` undefined when it completes (the certificate
 * verified against the test CA and the name), else why it failed; `connected` says whether TCP got
 * through, so that a refused handshake is told apart from a refused connection.
 */
function handshake(
  host: string,
  port = PORT.https,
): Promise<{ connected: boolean; error: NodeJS.ErrnoException | undefined }> {
  return new Promise((resolve) => {
    let connected = false;
    const socket = tls.connect({ host: address, port, servername: host, ca: ca.certPem, timeout: 5000 });
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('secureConnect', () => {
      socket.destroy();
      resolve({ connected, error: undefined });
    });
    socket.once('timeout', () => socket.destroy(new Error('timeout')));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ connected, error }));
  });
}

/**
 * Envoy has no filter chain for the name (no certificate covers it): it accepts the TCP connection and
 * resets it on the ClientHello, so the handshake never completes.
 */
function expectHandshakeRefused(r: { connected: boolean; error: NodeJS.ErrnoException | undefined }): void {
  expect(r.connected).toBe(true);
  expect(r.error?.code).toBe('ECONNRESET');
  expect(r.error?.message).toMatch(
    /^(read ECONNRESET|Client network socket disconnected before secure TLS connection was established)$/,
  );
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
metadata:
  name: skein
  annotations: { ingressclass.kubernetes.io/is-default-class: "true" }
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
    - { hosts: [invalid.test], secretName: mismatched-cert }
  rules:
    - host: secure.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('blue')} }]
    - host: broken.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('blue')} }]
    - host: invalid.test
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
---
# The legacy annotation instead of spec.ingressClassName: ours, and another controller's.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: legacy
  namespace: default
  annotations:
    kubernetes.io/ingress.class: skein
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.http}"
spec:
  rules:
    - host: legacy.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('green')} }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: legacy-theirs
  namespace: default
  annotations:
    kubernetes.io/ingress.class: other
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.http}"
spec:
  rules:
    - host: legacy-theirs.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('green')} }]
---
# No class at all: the default IngressClass (ours) takes it.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: defaulted
  namespace: default
  annotations:
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.http}"
spec:
  rules:
    - host: defaulted.test
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('blue')} }]
---
# Precedence with real requests, the rules listed in the wrong order on purpose, and no default backend:
# alone on its socket, what matches nothing gets Envoy's 404.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: strict
  namespace: default
  annotations:
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.strict}"
spec:
  ingressClassName: skein
  rules:
    - host: prec.test
      http:
        paths:
          - { path: /api, pathType: Prefix, backend: ${backend('blue')} }
          - { path: /api/v2, pathType: Prefix, backend: ${backend('green')} }
          - { path: /same, pathType: Prefix, backend: ${backend('blue')} }
          - { path: /same, pathType: Exact, backend: ${backend('green')} }
          - { path: /api/v2/exact, pathType: Exact, backend: ${backend('fallback')} }
---
# A wildcard host over HTTPS, with a default backend, on its own sockets.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: wild-tls
  namespace: default
  annotations:
    ingress.skein.io/address: "${address}"
    ingress.skein.io/http-port: "${PORT.wildHttp}"
    ingress.skein.io/https-port: "${PORT.wildHttps}"
spec:
  ingressClassName: skein
  tls: [{ hosts: ["*.wildtls.test", wildtls.test], secretName: wild-cert }]
  defaultBackend: ${backend('green')}
  rules:
    - host: "*.wildtls.test"
      http:
        paths: [{ path: /, pathType: Prefix, backend: ${backend('blue')} }]
`;
}

/** A kubernetes.io/tls Secret whose key is not the certificate's. */
function mismatchedSecretYaml(name: string, cert: TestCert, other: TestCert): string {
  return tlsSecretYaml(name, cert).replace(cert.secretData['tls.key'], other.secretData['tls.key']);
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
        'secrets.yaml': [
          tlsSecretYaml('secure-cert', ca.issue(['secure.test'])),
          tlsSecretYaml('wild-cert', ca.issue(['*.wildtls.test', 'wildtls.test'])),
          // A certificate with another certificate's key: parses, but is not usable.
          mismatchedSecretYaml('mismatched-cert', ca.issue(['invalid.test']), ca.issue(['invalid.test'])),
        ].join('---\n'),
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
      'defaulted',
      'h2c',
      'legacy',
      'main',
      'secure',
      'strict',
      'wild-tls',
    ]);
  });

  it('takes an Ingress by the legacy kubernetes.io/ingress.class annotation, and one without class by the default class', async () => {
    expect((await get('legacy.test', '/x')).echo?.backend).toBe('green');
    expect((await get('defaulted.test', '/x')).echo?.backend).toBe('blue');
    // The legacy annotation naming another controller's class: not ours, so the host is unknown here.
    expect((await get('legacy-theirs.test', '/x')).echo?.backend).toBe('fallback');
  });

  it('answers 404 for what matches no rule where no default backend is', async () => {
    const r = await get('prec.test', '/nowhere', { address, port: PORT.strict });
    expect(r.status).toBe(404);
    expect(r.echo).toBeUndefined();
    expect((await get('unknown.test', '/', { address, port: PORT.strict })).status).toBe(404);
  });

  it('picks the longest matching path, and Exact over Prefix, whatever the order of the rules', async () => {
    const at = async (path: string) => {
      const r = await get('prec.test', path, { address, port: PORT.strict });
      return r.status === 200 ? r.echo?.backend : r.status;
    };
    // The longest Prefix wins: /api/v2 over /api.
    expect(await at('/api')).toBe('blue');
    expect(await at('/api/v1/x')).toBe('blue');
    expect(await at('/api/v2')).toBe('green');
    expect(await at('/api/v2/x')).toBe('green');
    // Exact beats a Prefix that also matches, listed before it or not.
    expect(await at('/same')).toBe('green');
    expect(await at('/same/x')).toBe('blue');
    expect(await at('/api/v2/exact')).toBe('fallback');
    expect(await at('/api/v2/exact/more')).toBe('green');
    expect(await at('/apis')).toBe(404);
  });

  it('serves a wildcard host and the default backend over HTTPS too', async () => {
    const wild = await getTls('a.wildtls.test', '/w', PORT.wildHttps);
    expect(wild.status).toBe(200);
    expect(wild.echo?.backend).toBe('blue');
    // The apex is listed in spec.tls but matches no rule: the default backend, over TLS.
    const apex = await getTls('wildtls.test', '/d', PORT.wildHttps);
    expect(apex.echo?.backend).toBe('green');
    expect(apex.echo?.path).toBe('/d');
    // Two labels: the wildcard certificate does not cover them (one label, as the rule), and the client
    // verifying the name refuses it.
    expect((await handshake('a.b.wildtls.test', PORT.wildHttps)).error?.code).toBe(
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
    // And the same over plain HTTP.
    expect((await get('b.wildtls.test', '/', { address, port: PORT.wildHttp })).echo?.backend).toBe('blue');
    expect((await get('wildtls.test', '/', { address, port: PORT.wildHttp })).echo?.backend).toBe('green');
    expect((await get('a.b.wildtls.test', '/', { address, port: PORT.wildHttp })).echo?.backend).toBe(
      'green',
    );
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

  it('does not serve a host whose TLS Secret is missing or invalid, over TLS or in plain text; other hosts work', async () => {
    // A handshake that works, for comparison.
    expect(await handshake('secure.test')).toEqual({ connected: true, error: undefined });
    for (const host of ['broken.test', 'invalid.test']) {
      // No certificate covers the host, so Envoy ends the handshake.
      expectHandshakeRefused(await handshake(host));
      // Plain HTTP for it gets 503, never the backend.
      const plain = await get(host, '/');
      expect(plain.status).toBe(503);
      expect(plain.echo).toBeUndefined();
      expect(plain.body).toBe('TLS is not available for this host\n');
    }
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
    const invalid = diagnostics.find(
      (x) => x.code === 'SKEIN_INGRESS_TLS_SECRET' && x.field === 'spec.tls[2].secretName',
    );
    expect(invalid).toMatchObject({ object: 'Ingress/default/secure' });
    expect(invalid?.message).toBe(
      'spec.tls[2]: Secret default/mismatched-cert tls.key does not match the certificate in tls.crt: host invalid.test is not served over TLS, and plain HTTP requests for it get 503',
    );
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
