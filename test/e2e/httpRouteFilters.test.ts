import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { GATEWAY_CLASS_YAML, serviceYaml, startTestSkein, type TestSkein } from '../helpers/standalone.js';

/**
 * HTTPRoute filters, timeouts, retries, invalid backends and WebSocket, end to end: YAML → Skein →
 * a real Envoy → real HTTP backends on loopback, which record what reached them. One Skein and Envoy
 * for the whole file; each test asserts which backend answered, with which path, headers and status.
 */

const GW = 'gateway.networking.k8s.io';
const PORT = 8080;

// ---------------------------------------------------------------------------------------------------
// Backends

interface Received {
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
}

/**
 * An HTTP/1.1 backend that records every request and answers with JSON naming itself and echoing the
 * request (plus an `x-backend` header). Paths ask for behaviours:
 * - `…/slow?ms=N`: answer after N ms;
 * - `…/flaky/KEY?fail=N`: answer 503 to the first N requests for KEY, then 200;
 * - an `Upgrade: websocket` request gets 101 and the connection then echoes its bytes.
 */
interface TestBackend {
  readonly name: string;
  readonly port: number;
  readonly received: Received[];
  /** Requests whose path starts with `prefix`. */
  seen(prefix: string): Received[];
  close(): Promise<void>;
}

async function startBackend(name: string): Promise<TestBackend> {
  const received: Received[] = [];
  const failures = new Map<string, number>();
  const upgraded = new Set<Socket>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://backend');
    received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    const answer = (status: number): void => {
      const body = JSON.stringify({ backend: name, method: req.method, path: req.url, headers: req.headers });
      res.writeHead(status, { 'content-type': 'application/json', 'x-backend': name });
      res.end(body);
    };
    req.resume();
    const flaky = /\/flaky\/([^/?]+)/.exec(url.pathname);
    if (flaky?.[1] !== undefined) {
      const count = (failures.get(flaky[1]) ?? 0) + 1;
      failures.set(flaky[1], count);
      answer(count <= Number(url.searchParams.get('fail') ?? '1') ? 503 : 200);
      return;
    }
    if (url.pathname.endsWith('/slow')) {
      const timer = setTimeout(() => answer(200), Number(url.searchParams.get('ms') ?? '1000'));
      res.once('close', () => clearTimeout(timer));
      return;
    }
    answer(200);
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket) => {
    received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const accept = createHash('sha1')
      .update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nx-backend: ${name}\r\n\r\n`,
    );
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    name,
    port: (server.address() as AddressInfo).port,
    received,
    seen: (prefix) => received.filter((r) => r.path.startsWith(prefix)),
    close: async () => {
      for (const s of upgraded) s.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Client

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The backend's JSON, when a backend answered. */
  readonly echo: { backend: string; path: string; headers: http.IncomingHttpHeaders } | undefined;
  readonly ms: number;
}

let address = '';

/** One request to the gateway on a fresh connection (so no test depends on another's keep-alive). */
function send(
  path: string,
  opts: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Reply> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: address,
        port: PORT,
        path,
        method: opts.method ?? 'GET',
        headers: opts.headers ?? {},
        agent: false,
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => {
          const json = (res.headers['content-type'] ?? '').includes('application/json');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            echo: json ? (JSON.parse(body) as Reply['echo']) : undefined,
            ms: Date.now() - started,
          });
        });
      },
    );
    req.once('timeout', () => req.destroy(new Error(`${path}: no answer in time`)));
    req.once('error', reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------------
// Configuration

function gatewayYaml(): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: ${GW}/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - { name: http, protocol: HTTP, port: ${PORT} }
`;
}

function route(name: string, rules: string, hostnames?: string): string {
  return `---
apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ name: edge }]
${hostnames === undefined ? '' : `  hostnames: [${hostnames}]\n`}  rules:
${rules}`;
}

const prefix = (value: string) => `matches: [{ path: { type: PathPrefix, value: ${value} } }]`;

const ROUTES = [
  route(
    'headers',
    `    - ${prefix('/headers')}
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: X-Header-Set, value: set-overwrites-values }]
            add: [{ name: X-Header-Add, value: add-appends-values }]
            remove: [X-Header-Remove]
        - type: ResponseHeaderModifier
          responseHeaderModifier:
            set: [{ name: X-Response-Set, value: set-by-gateway }]
            add: [{ name: X-Response-Add, value: added-by-gateway }]
            remove: [X-Backend]
      backendRefs: [{ name: v1, port: 80 }]
`,
  ),
  route(
    'redirects',
    `    - ${prefix('/redirect/host')}
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
    - ${prefix('/redirect/scheme')}
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, statusCode: 301 } }]
    - ${prefix('/redirect/port')}
      filters: [{ type: RequestRedirect, requestRedirect: { port: 8083 } }]
    - ${prefix('/redirect/prefix')}
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new-prefix } }
    - ${prefix('/redirect/full')}
      filters:
        - type: RequestRedirect
          requestRedirect:
            hostname: example.org
            port: 80
            statusCode: 308
            path: { type: ReplaceFullPath, replaceFullPath: /full-replacement }
`,
  ),
  route(
    'rewrites',
    `    - ${prefix('/rewrite/host')}
      filters: [{ type: URLRewrite, urlRewrite: { hostname: rewritten.example } }]
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/rewrite/prefix')}
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /xyz } } }]
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/rewrite/strip')}
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/rewrite/full')}
      filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: /one } } }]
      backendRefs: [{ name: v1, port: 80 }]
`,
  ),
  route(
    'rewrite-root',
    `    - filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /root } } }]
      backendRefs: [{ name: v1, port: 80 }]
`,
    'root.example',
  ),
  route(
    'mirrors',
    `    - ${prefix('/mirror/one')}
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 } } }
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/mirror/two')}
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 } } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: v2, port: 80 } } }
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/mirror/none')}
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: mirror, port: 80 }, percent: 0 } }
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/mirror/half')}
      filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: mirror, port: 80 }, fraction: { numerator: 1, denominator: 2 } }
      backendRefs: [{ name: v1, port: 80 }]
`,
  ),
  route(
    'cors',
    `    - ${prefix('/cors/strict')}
      filters:
        - type: CORS
          cors:
            allowOrigins: ["https://www.foo.com", "https://*.bar.com"]
            allowMethods: [GET, OPTIONS]
            allowHeaders: [x-header-1, x-header-2]
            exposeHeaders: [x-header-3, x-header-4]
            allowCredentials: true
            maxAge: 3600
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/cors/any')}
      filters:
        - type: CORS
          cors: { allowOrigins: ["*"], allowMethods: ["*"], allowHeaders: ["*"] }
      backendRefs: [{ name: v1, port: 80 }]
`,
  ),
  route(
    'backend-filters',
    `    - ${prefix('/backend-filters')}
      backendRefs:
        - name: v1
          port: 80
          filters:
            - { type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Picked, value: v1 }] } }
        - name: v2
          port: 80
          filters:
            - { type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Picked, value: v2 }] } }
            - { type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: X-Via-V2, value: "yes" }] } }
`,
  ),
  route(
    'timeouts',
    `    - ${prefix('/timeout/request')}
      timeouts: { request: 500ms }
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/timeout/backend')}
      timeouts: { backendRequest: 300ms }
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/timeout/disabled')}
      timeouts: { request: 0s }
      backendRefs: [{ name: v1, port: 80 }]
`,
  ),
  route(
    'retries',
    `    - ${prefix('/retry')}
      retry: { codes: [503], attempts: 2, backoff: 10ms }
      backendRefs: [{ name: v1, port: 80 }]
    - ${prefix('/no-retry')}
      backendRefs: [{ name: v1, port: 80 }]
`,
  ),
  route(
    'invalid-backends',
    `    - ${prefix('/weight-zero')}
      backendRefs: [{ name: v1, port: 80, weight: 0 }]
    - ${prefix('/missing-backend')}
      backendRefs: [{ name: does-not-exist, port: 80 }]
    - ${prefix('/half-missing')}
      backendRefs: [{ name: v1, port: 80 }, { name: does-not-exist, port: 80 }]
`,
  ),
  route(
    'websocket',
    `    - ${prefix('/ws')}
      backendRefs: [{ name: ws, port: 80 }]
`,
  ),
].join('');

// ---------------------------------------------------------------------------------------------------

describe('HTTPRoute filters through a real Envoy', () => {
  let skein: TestSkein | undefined;
  let v1: TestBackend;
  let v2: TestBackend;
  let mirror: TestBackend;

  beforeAll(async () => {
    address = randomLoopback();
    v1 = await startBackend('v1');
    v2 = await startBackend('v2');
    mirror = await startBackend('mirror');
    const services = [
      serviceYaml({ name: 'v1', endpoints: [{ host: '127.0.0.1', port: v1.port }] }),
      serviceYaml({ name: 'v2', endpoints: [{ host: '127.0.0.1', port: v2.port }] }),
      serviceYaml({ name: 'mirror', endpoints: [{ host: '127.0.0.1', port: mirror.port }] }),
      // v1 again, as a WebSocket Service: routes to it allow the upgrade.
      serviceYaml({
        name: 'ws',
        appProtocol: 'kubernetes.io/ws',
        endpoints: [{ host: '127.0.0.1', port: v1.port }],
      }),
    ].join('---\n');
    skein = await startTestSkein({
      files: { 'gateway.yaml': gatewayYaml(), 'services.yaml': services, 'routes.yaml': ROUTES },
    });
    // Every route is in one route configuration: once the last one answers, they all do.
    await waitFor(
      'the gateway to serve',
      async () => ((await send('/ws')).status === 200 ? true : undefined),
      20_000,
    );
  });

  afterAll(async () => {
    await skein?.stop();
    await Promise.all([v1?.close(), v2?.close(), mirror?.close()]);
  });

  it('modifies request and response headers (set overwrites, add appends, remove removes)', async () => {
    const r = await send('/headers/a', {
      headers: { 'X-Header-Set': 'original', 'X-Header-Add': 'some-other-value', 'X-Header-Remove': 'gone' },
    });
    expect(r.status).toBe(200);
    expect(r.echo?.backend).toBe('v1');
    expect(r.echo?.headers['x-header-set']).toBe('set-overwrites-values');
    // Two header lines reach the backend; Node joins them with ", ".
    expect(r.echo?.headers['x-header-add']).toBe('some-other-value, add-appends-values');
    expect(r.echo?.headers['x-header-remove']).toBeUndefined();
    expect(r.headers['x-response-set']).toBe('set-by-gateway');
    expect(r.headers['x-response-add']).toBe('added-by-gateway');
    expect(r.headers['x-backend']).toBeUndefined();
  });

  it('redirects without reaching a backend: hostname, scheme, port, path and status', async () => {
    const before = v1.received.length + v2.received.length;
    const location = async (path: string, status: number): Promise<URL> => {
      const r = await send(path);
      expect(r.status, path).toBe(status);
      return new URL(String(r.headers.location));
    };
    // No port given and no scheme: the listener's port, which a new hostname must carry.
    expect((await location('/redirect/host/x', 302)).href).toBe(`http://example.org:${PORT}/redirect/host/x`);
    // A scheme without a port: its well-known port (443, which URL leaves out).
    const scheme = await location('/redirect/scheme?q=1', 301);
    expect([scheme.protocol, scheme.hostname, scheme.port, scheme.pathname, scheme.search]).toEqual([
      'https:',
      address,
      '',
      '/redirect/scheme',
      '?q=1',
    ]);
    expect((await location('/redirect/port', 302)).href).toBe(`http://${address}:8083/redirect/port`);
    expect((await location('/redirect/prefix/a/b', 302)).href).toBe(
      `http://${address}:${PORT}/new-prefix/a/b`,
    );
    expect((await location('/redirect/prefix', 302)).href).toBe(`http://${address}:${PORT}/new-prefix`);
    // Port 80 with http: no port in Location at all.
    const full = await send('/redirect/full/deep?x=y');
    expect(full.status).toBe(308);
    expect(full.headers.location).toBe('http://example.org/full-replacement?x=y');
    expect(v1.received.length + v2.received.length).toBe(before);
  });

  it('rewrites the Host and the path the backend sees, segment-wise, keeping the query', async () => {
    const seen = async (path: string, headers: Record<string, string> = {}) => {
      const r = await send(path, { headers });
      expect(r.status, path).toBe(200);
      return r.echo;
    };
    expect((await seen('/rewrite/host/a'))?.headers.host).toBe('rewritten.example');
    expect((await seen('/rewrite/prefix/a/b?q=1'))?.path).toBe('/xyz/a/b?q=1');
    expect((await seen('/rewrite/prefix'))?.path).toBe('/xyz');
    expect((await seen('/rewrite/prefix/'))?.path).toBe('/xyz/');
    expect((await seen('/rewrite/strip/a'))?.path).toBe('/a');
    expect((await seen('/rewrite/strip'))?.path).toBe('/');
    expect((await seen('/rewrite/full/x/y?k=v'))?.path).toBe('/one?k=v');
    expect((await seen('/a/b', { host: 'root.example' }))?.path).toBe('/root/a/b');
    expect((await seen('/', { host: 'root.example' }))?.path).toBe('/root/');
  });

  it('mirrors requests: the client gets the primary answer, the mirrors get copies', async () => {
    const r = await send('/mirror/one/x', { headers: { 'x-trace': 'one' } });
    expect(r.echo?.backend).toBe('v1');
    const copy = await waitFor('the mirror to get the copy', () => mirror.seen('/mirror/one/x')[0]);
    expect(copy.headers['x-trace']).toBe('one');
    // Envoy marks the copy's Host.
    expect(copy.headers.host).toBe(`${address}-shadow:${PORT}`);

    expect((await send('/mirror/two/y')).echo?.backend).toBe('v1');
    await waitFor('both mirrors to get a copy', () =>
      mirror.seen('/mirror/two/y').length === 1 && v2.seen('/mirror/two/y').length === 1 ? true : undefined,
    );

    const n = 60;
    for (let i = 0; i < n; i++) {
      expect((await send(`/mirror/none/${i}`)).status).toBe(200);
      expect((await send(`/mirror/half/${i}`)).status).toBe(200);
    }
    // Copies of /mirror/half are in flight at most briefly; let them land, then count.
    await new Promise((r) => setTimeout(r, 300));
    expect(mirror.seen('/mirror/none')).toHaveLength(0);
    // 1/2 of 60: the chance of falling outside 10..50 is below 1e-7.
    const half = mirror.seen('/mirror/half').length;
    expect(half).toBeGreaterThan(10);
    expect(half).toBeLessThan(50);
  });

  it('answers CORS preflights itself and adds CORS headers to actual requests', async () => {
    const before = v1.seen('/cors').length;
    const preflight = await send('/cors/strict', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://www.foo.com',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'x-header-1, x-header-2',
      },
    });
    expect(preflight.status).toBe(200);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://www.foo.com');
    expect(preflight.headers['access-control-allow-methods']).toBe('GET, OPTIONS');
    expect(preflight.headers['access-control-allow-headers']).toBe('x-header-1, x-header-2');
    expect(preflight.headers['access-control-max-age']).toBe('3600');
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');

    // A wildcard label matches any number of labels; the default port may be written out.
    for (const origin of ['https://xpto.www.bar.com', 'https://a.bar.com:443']) {
      const ok = await send('/cors/strict', {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'GET' },
      });
      expect(ok.headers['access-control-allow-origin'], origin).toBe(origin);
    }
    // Not allowed: answered by Envoy too (not forwarded), without Access-Control-Allow-Origin.
    for (const origin of [
      'https://foobar.com',
      'http://www.foo.com',
      'https://bar.com',
      'https://a.bar.com:8443',
    ]) {
      const denied = await send('/cors/strict', {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'GET' },
      });
      expect(denied.status, origin).toBe(200);
      expect(denied.headers['access-control-allow-origin'], origin).toBeUndefined();
    }
    expect(v1.seen('/cors').length).toBe(before);

    const actual = await send('/cors/strict/x', { headers: { origin: 'https://www.foo.com' } });
    expect(actual.echo?.backend).toBe('v1');
    expect(actual.headers['access-control-allow-origin']).toBe('https://www.foo.com');
    expect(actual.headers['access-control-allow-credentials']).toBe('true');
    expect(actual.headers['access-control-expose-headers']).toBe('x-header-3, x-header-4');
    const foreign = await send('/cors/strict/x', { headers: { origin: 'https://foobar.com' } });
    expect(foreign.echo?.backend).toBe('v1');
    expect(foreign.headers['access-control-allow-origin']).toBeUndefined();

    // `*` methods and headers: Envoy echoes what the preflight asks for; no credentials header.
    const any = await send('/cors/any', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://foobar.com:12345',
        'access-control-request-method': 'PUT',
        'access-control-request-headers': 'x-custom',
      },
    });
    expect(any.status).toBe(200);
    expect(any.headers['access-control-allow-origin']).toBe('https://foobar.com:12345');
    expect(any.headers['access-control-allow-methods']).toBe('PUT');
    expect(any.headers['access-control-allow-headers']).toBe('x-custom');
    expect(any.headers['access-control-allow-credentials']).toBeUndefined();
  });

  it('applies per-backendRef header filters to the requests sent to that backend only', async () => {
    const picked = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await send(`/backend-filters/${i}`);
      const backend = r.echo?.backend ?? '?';
      picked.set(backend, (picked.get(backend) ?? 0) + 1);
      expect(r.echo?.headers['x-picked'], `request ${i}`).toBe(backend);
      expect(r.headers['x-via-v2']).toBe(backend === 'v2' ? 'yes' : undefined);
    }
    // 30 tries at 1:1: each backend shows up (chance of a miss: 2^-29).
    expect([...picked.keys()].sort()).toEqual(['v1', 'v2']);
  });

  it('times out a slow backend with a 504 within the timeout', async () => {
    const slow = await send('/timeout/request/slow?ms=3000');
    expect(slow.status).toBe(504);
    expect(slow.ms).toBeGreaterThanOrEqual(450);
    expect(slow.ms).toBeLessThan(2000);
    expect((await send('/timeout/request/slow?ms=50')).status).toBe(200);
    const perTry = await send('/timeout/backend/slow?ms=3000');
    expect(perTry.status).toBe(504);
    expect(perTry.ms).toBeLessThan(2000);
    // 0s disables the request timeout: longer than the 15 s default would be too slow for a test, so
    // this checks what a default-less route must allow: an answer after 1.2 s.
    expect((await send('/timeout/disabled/slow?ms=1200')).status).toBe(200);
  });

  it('retries a 503 and succeeds; gives up after the configured attempts', async () => {
    const key = `k${Date.now()}`;
    const r = await send(`/retry/flaky/${key}?fail=1`);
    expect(r.status).toBe(200);
    expect(r.echo?.backend).toBe('v1');
    expect(v1.seen(`/retry/flaky/${key}`)).toHaveLength(2);
    // Three failures: the first try and two retries all fail, so the client sees the 503.
    const gaveUp = await send(`/retry/flaky/${key}-x?fail=3`);
    expect(gaveUp.status).toBe(503);
    expect(v1.seen(`/retry/flaky/${key}-x`)).toHaveLength(3);
    // Without a retry policy the first 503 is the answer.
    expect((await send(`/no-retry/flaky/${key}-y?fail=1`)).status).toBe(503);
    expect(v1.seen(`/no-retry/flaky/${key}-y`)).toHaveLength(1);
  });

  it('answers 500 for a weight-0 or missing backend, and for a missing backend’s share', async () => {
    expect((await send('/weight-zero')).status).toBe(500);
    expect((await send('/missing-backend')).status).toBe(500);
    const statuses = new Set<number>();
    for (let i = 0; i < 30; i++) statuses.add((await send(`/half-missing/${i}`)).status);
    expect([...statuses].sort()).toEqual([200, 500]);
  });

  it('upgrades to WebSocket on a route to a WebSocket backend, and not elsewhere', async () => {
    const upgrade = (path: string) =>
      new Promise<{ socket: Socket; headers: http.IncomingHttpHeaders } | { status: number }>(
        (resolve, reject) => {
          const req = http.request({
            host: address,
            port: PORT,
            path,
            agent: false,
            headers: {
              connection: 'Upgrade',
              upgrade: 'websocket',
              'sec-websocket-version': '13',
              'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            },
            timeout: 5000,
          });
          req.once('upgrade', (res, socket) => resolve({ socket, headers: res.headers }));
          req.once('response', (res) => {
            res.resume();
            resolve({ status: res.statusCode ?? 0 });
          });
          req.once('timeout', () => req.destroy(new Error('no upgrade in time')));
          req.once('error', reject);
          req.end();
        },
      );

    const up = await upgrade('/ws/chat');
    if (!('socket' in up)) throw new Error(`no upgrade: ${up.status}`);
    expect(up.headers['sec-websocket-accept']).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(up.headers['x-backend']).toBe('v1');
    // After the upgrade the connection carries raw bytes both ways (the backend echoes them).
    up.socket.write('ping through envoy');
    const [echoed] = (await once(up.socket, 'data')) as [Buffer];
    expect(echoed.toString()).toBe('ping through envoy');
    up.socket.destroy();

    // The same backend behind a route without WebSocket: Envoy refuses the upgrade.
    const refused = await upgrade('/headers/ws');
    expect('status' in refused ? refused.status : 101).toBe(403);
  });
});
