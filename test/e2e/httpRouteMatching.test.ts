import { randomInt } from 'node:crypto';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, type BackendReply, http1Backend } from '../helpers/backend.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { GATEWAY_CLASS_YAML, serviceYaml, startTestSkein, type TestSkein } from '../helpers/standalone.js';

/**
 * HTTPRoute matching end to end: YAML → Skein (standalone) → a real Envoy → real HTTP backends on
 * loopback. Paths (PathPrefix segment-wise, Exact, RegularExpression), headers and query parameters
 * (Exact and RegularExpression), methods, the spec's precedence across routes, hostname intersection
 * between routes and listeners, and listener isolation. Each request names its Host, and the test asserts
 * which backend answered and with which path, or Envoy's 404 when no route matches.
 */

const GW = 'gateway.networking.k8s.io';
const address = randomLoopback();
const base = randomInt(20_000, 59_000);
/** `main` carries the matching routes (told apart by Host), `iso` three listeners for isolation. */
const PORT = { main: base, iso: base + 1 };
const BACKENDS = ['v1', 'v2', 'v3', 'v4', 'v5'] as const;

let skein: TestSkein | undefined;
let backends: Backend[] = [];

function gatewayYaml(): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: ${GW}/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - { name: main, protocol: HTTP, port: ${PORT.main} }
    - { name: any, protocol: HTTP, port: ${PORT.iso} }
    - { name: wild, protocol: HTTP, port: ${PORT.iso}, hostname: "*.iso.test" }
    - { name: exact, protocol: HTTP, port: ${PORT.iso}, hostname: a.iso.test }
`;
}

function route(
  name: string,
  opts: { section: string; hostnames?: string; created?: string; rules: string },
): string {
  return `---
apiVersion: ${GW}/v1
kind: HTTPRoute
metadata:
  name: ${name}
  namespace: default
${opts.created === undefined ? '' : `  creationTimestamp: "${opts.created}"\n`}spec:
  parentRefs: [{ name: edge, sectionName: ${opts.section} }]
${opts.hostnames === undefined ? '' : `  hostnames: [${opts.hostnames}]\n`}  rules:
${opts.rules}`;
}

const to = (backend: string) => `      backendRefs: [{ name: ${backend}, port: 80 }]\n`;

function routesYaml(): string {
  return [
    // Paths, on paths.test; anything else on paths.test falls to the catch-all (v5).
    route('paths', {
      section: 'main',
      hostnames: 'paths.test',
      rules: `    - matches: [{ path: { type: PathPrefix, value: /v2 } }]
${to('v1')}    - matches: [{ path: { type: Exact, value: /exact } }]
${to('v2')}    - matches: [{ path: { type: RegularExpression, value: "/re/[0-9]+" } }]
${to('v3')}    - matches: [{ path: { type: PathPrefix, value: /trailing/ } }]
${to('v4')}`,
    }),
    route('paths-fallback', {
      section: 'main',
      hostnames: 'paths.test',
      rules: `    - backendRefs: [{ name: v5, port: 80 }]\n`,
    }),
    // Headers, on headers.test: no fallback, so a request no rule matches gets Envoy's 404.
    route('headers', {
      section: 'main',
      hostnames: 'headers.test',
      rules: `    - matches: [{ headers: [{ name: Version, value: one }] }]
${to('v1')}    - matches: [{ headers: [{ name: color, type: RegularExpression, value: "^(red|blue)$" }] }]
${to('v2')}    - matches: [{ headers: [{ name: version, value: one }, { name: color, value: red }] }]
${to('v3')}`,
    }),
    route('query', {
      section: 'main',
      hostnames: 'query.test',
      rules: `    - matches: [{ queryParams: [{ name: animal, value: whale }] }]
${to('v1')}    - matches: [{ queryParams: [{ name: animal, value: dolphin }, { name: color, value: blue }] }]
${to('v2')}    - matches: [{ queryParams: [{ name: id, type: RegularExpression, value: "^[0-9]+$" }] }]
${to('v3')}`,
    }),
    route('methods', {
      section: 'main',
      hostnames: 'method.test',
      rules: `    - matches: [{ method: POST }]
${to('v1')}    - matches: [{ method: GET, path: { type: PathPrefix, value: /path1 } }]
${to('v2')}    - matches: [{ method: PATCH, headers: [{ name: version, value: three }] }]
${to('v3')}`,
    }),
    // Precedence across two routes on prec.test: `old` is older, `new` newer (and first by name).
    route('prec-old', {
      section: 'main',
      hostnames: 'prec.test',
      created: '2024-01-01T00:00:00Z',
      rules: `    - matches: [{ path: { type: PathPrefix, value: /a } }]
${to('v1')}    - matches: [{ path: { type: PathPrefix, value: /m }, headers: [{ name: x, value: "1" }] }]
${to('v1')}    - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: x, value: "1" }] }]
${to('v1')}    - matches: [{ path: { type: PathPrefix, value: /tie } }]
${to('v1')}`,
    }),
    route('a-prec-new', {
      section: 'main',
      hostnames: 'prec.test',
      created: '2024-06-01T00:00:00Z',
      rules: `    - matches: [{ path: { type: Exact, value: /a } }, { path: { type: PathPrefix, value: /a/b } }]
${to('v2')}    - matches: [{ path: { type: PathPrefix, value: /m }, method: GET }]
${to('v2')}    - matches: [{ path: { type: PathPrefix, value: /h }, headers: [{ name: x, value: "1" }, { name: y, value: "2" }] }]
${to('v2')}    - matches: [{ path: { type: PathPrefix, value: /tie } }]
${to('v2')}`,
    }),
    // Listener isolation on the iso port: each listener's routes serve the hosts that listener owns.
    route('iso-any', { section: 'any', rules: `    - backendRefs: [{ name: v1, port: 80 }]\n` }),
    route('iso-wild', {
      section: 'wild',
      rules: `    - matches: [{ path: { type: PathPrefix, value: /w } }]\n${to('v2')}`,
    }),
    route('iso-exact', {
      section: 'exact',
      rules: `    - matches: [{ path: { type: PathPrefix, value: /e } }]\n${to('v3')}`,
    }),
    // Hostname intersection with the wildcard listener: other.test is not the listener's, so ignored.
    route('iso-intersect', {
      section: 'wild',
      hostnames: 'x.iso.test, "*.sub.iso.test", other.test',
      rules: `    - matches: [{ path: { type: PathPrefix, value: /i } }]\n${to('v4')}`,
    }),
    ...backends.map(
      (b) => `---\n${serviceYaml({ name: b.name, endpoints: [{ host: b.host, port: b.port }] })}`,
    ),
  ].join('');
}

interface Answer {
  readonly status: number;
  readonly backend: string | undefined;
  readonly path: string | undefined;
}

/** One request with Host `host`, on a fresh connection; the backend that answered, if one did. */
function request(
  port: number,
  host: string,
  path: string,
  opts: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: address,
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { host, ...opts.headers },
        agent: false,
        timeout: 5_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => {
          const json = (res.headers['content-type'] ?? '').includes('application/json');
          const reply = json ? (JSON.parse(body) as BackendReply) : undefined;
          resolve({ status: res.statusCode ?? 0, backend: reply?.backend, path: reply?.path });
        });
      },
    );
    req.once('timeout', () => req.destroy(new Error(`${host}${path}: no answer in 5 s`)));
    req.once('error', reject);
    req.end();
  });
}

const main = (host: string, path: string, opts?: Parameters<typeof request>[3]) =>
  request(PORT.main, host, path, opts);
/** Which backend answered (or the status when none did). */
const who = async (p: Promise<Answer>): Promise<string> => {
  const a = await p;
  return a.backend ?? String(a.status);
};

beforeAll(async () => {
  backends = [];
  for (const name of BACKENDS) backends.push(await http1Backend.start({ host: '127.0.0.1', port: 0, name }));
  skein = await startTestSkein({ files: { 'gateway.yaml': gatewayYaml(), 'routes.yaml': routesYaml() } });
  // The last route in the file serving means the whole configuration is in Envoy.
  await waitFor(
    'the routes to serve',
    async () => ((await request(PORT.iso, 'x.iso.test', '/i')).backend === 'v4' ? true : undefined),
    20_000,
    100,
  );
}, 60_000);

afterAll(async () => {
  await skein?.stop();
  for (const b of backends) await b.close();
});

describe('HTTPRoute paths', () => {
  it('PathPrefix matches whole segments: /v2 and /v2/x, never /v2example', async () => {
    expect(await main('paths.test', '/v2')).toEqual({ status: 200, backend: 'v1', path: '/v2' });
    expect(await main('paths.test', '/v2/x?q=1')).toEqual({ status: 200, backend: 'v1', path: '/v2/x?q=1' });
    expect(await main('paths.test', '/v2/')).toEqual({ status: 200, backend: 'v1', path: '/v2/' });
    expect(await main('paths.test', '/v2example')).toEqual({
      status: 200,
      backend: 'v5',
      path: '/v2example',
    });
  });

  it('a prefix with a trailing slash matches the path without it, and below it', async () => {
    expect(await who(main('paths.test', '/trailing'))).toBe('v4');
    expect(await who(main('paths.test', '/trailing/deeper'))).toBe('v4');
    expect(await who(main('paths.test', '/trailingx'))).toBe('v5');
  });

  it('Exact matches the path alone, not below it nor with a trailing slash; the query string is not part of it', async () => {
    expect(await who(main('paths.test', '/exact'))).toBe('v2');
    expect(await who(main('paths.test', '/exact?a=b'))).toBe('v2');
    expect(await who(main('paths.test', '/exact/'))).toBe('v5');
    expect(await who(main('paths.test', '/exact/more'))).toBe('v5');
  });

  it('RegularExpression must match the whole path', async () => {
    expect(await who(main('paths.test', '/re/123'))).toBe('v3');
    expect(await who(main('paths.test', '/re/12a'))).toBe('v5');
    expect(await who(main('paths.test', '/re/123/x'))).toBe('v5');
    expect(await who(main('paths.test', '/pre/re/123'))).toBe('v5');
  });
});

describe('HTTPRoute headers, query parameters and methods', () => {
  it('matches header names case-insensitively and values exactly or by regular expression', async () => {
    expect(await who(main('headers.test', '/', { headers: { version: 'one' } }))).toBe('v1');
    expect(await who(main('headers.test', '/', { headers: { VERSION: 'one' } }))).toBe('v1');
    expect(await who(main('headers.test', '/', { headers: { version: 'One' } }))).toBe('404');
    expect(await who(main('headers.test', '/', { headers: { color: 'blue' } }))).toBe('v2');
    expect(await who(main('headers.test', '/', { headers: { color: 'bluegreen' } }))).toBe('404');
    // Two header matches beat one.
    expect(await who(main('headers.test', '/', { headers: { version: 'one', color: 'red' } }))).toBe('v3');
    expect(await who(main('headers.test', '/'))).toBe('404');
  });

  it('matches query parameter names exactly, every parameter of a match, values exactly or by regular expression', async () => {
    expect(await who(main('query.test', '/?animal=whale'))).toBe('v1');
    expect(await who(main('query.test', '/?ANIMAL=whale'))).toBe('404');
    expect(await who(main('query.test', '/?animal=dolphin'))).toBe('404');
    expect(await who(main('query.test', '/?animal=dolphin&color=blue'))).toBe('v2');
    expect(await who(main('query.test', '/?id=42'))).toBe('v3');
    expect(await who(main('query.test', '/?id=42x'))).toBe('404');
  });

  it('matches the method, alone or with a path or headers', async () => {
    expect(await who(main('method.test', '/anything', { method: 'POST' }))).toBe('v1');
    expect(await who(main('method.test', '/path1/x', { method: 'GET' }))).toBe('v2');
    expect(await who(main('method.test', '/path1/x', { method: 'PUT' }))).toBe('404');
    expect(await who(main('method.test', '/', { method: 'PATCH', headers: { version: 'three' } }))).toBe(
      'v3',
    );
    expect(await who(main('method.test', '/', { method: 'PATCH' }))).toBe('404');
  });
});

describe('HTTPRoute precedence across routes (prec-old is older than a-prec-new)', () => {
  it('an Exact path beats a prefix of the same path, even from a newer route', async () => {
    expect(await who(main('prec.test', '/a'))).toBe('v2');
    expect(await who(main('prec.test', '/a/c'))).toBe('v1');
  });

  it('the longest prefix wins', async () => {
    expect(await who(main('prec.test', '/a/b/c'))).toBe('v2');
  });

  it('a method match beats a header match on the same path', async () => {
    expect(await who(main('prec.test', '/m', { headers: { x: '1' } }))).toBe('v2');
    expect(await who(main('prec.test', '/m', { method: 'POST', headers: { x: '1' } }))).toBe('v1');
  });

  it('more header matches win', async () => {
    expect(await who(main('prec.test', '/h', { headers: { x: '1', y: '2' } }))).toBe('v2');
    expect(await who(main('prec.test', '/h', { headers: { x: '1' } }))).toBe('v1');
  });

  it('on a full tie the older route wins, though the newer one comes first by name', async () => {
    expect(await who(main('prec.test', '/tie'))).toBe('v1');
  });
});

describe('hostnames: listener isolation and intersection', () => {
  const iso = (host: string, path: string) => who(request(PORT.iso, host, path));

  it('sends each host to the routes of the most specific listener that covers it', async () => {
    expect(await iso('a.iso.test', '/e')).toBe('v3');
    expect(await iso('b.iso.test', '/w')).toBe('v2');
    expect(await iso('elsewhere.test', '/anything')).toBe('v1');
  });

  it("never lets a request fall through to another listener's routes", async () => {
    // a.iso.test belongs to the exact listener, which has no /w: a 404, not the wildcard's or any's route.
    expect(await iso('a.iso.test', '/w')).toBe('404');
    // b.iso.test belongs to the wildcard listener, which has no /e.
    expect(await iso('b.iso.test', '/e')).toBe('404');
  });

  it("serves a route's hostnames that intersect its listener's and ignores the others", async () => {
    expect(await iso('x.iso.test', '/i')).toBe('v4');
    expect(await iso('deep.sub.iso.test', '/i')).toBe('v4');
    // Another host under the wildcard listener, not one of the route's: no route for /i there.
    expect(await iso('y.iso.test', '/i')).toBe('404');
    // other.test is not under *.iso.test, so the route does not serve it: the any listener's route does.
    expect(await iso('other.test', '/i')).toBe('v1');
  });
});
