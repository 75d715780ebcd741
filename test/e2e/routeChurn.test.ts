import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EchoServer, startEchoServer } from '../../src/echo/echoServer.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { GATEWAY_CLASS_YAML, serviceYaml, startTestSkein, type TestSkein } from '../helpers/standalone.js';

/**
 * Route churn: 100 edits to other routes (paths, filters, weights, new and removed Services and
 * virtual hosts) while clients keep sending requests on untouched routes, which share the listener,
 * the route configuration and even the virtual host with the edited ones. Every request must get a 2xx.
 * Each edit is waited for (Envoy serves its marker) before the next, so all 100 reach Envoy.
 */

const GW = 'gateway.networking.k8s.io';
const PORT = 8080;
const EDITS = 100;
const CLIENTS = 4;

function gatewayYaml(address: string): string {
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

/** The routes the clients use; never edited. One on the catch-all host, one on its own hostname. */
const STABLE_ROUTES = `apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: stable, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /stable } }]
      backendRefs: [{ name: stable, port: 80 }]
---
apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: stable-host, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [stable.example]
  rules:
    - backendRefs: [{ name: stable, port: 80 }]
`;

/**
 * Edit `i` of the churned routes: a marker route answering with `x-churn-version: i`, plus a varying
 * mix that touches every part of the translation: path changes, filters (CORS, rewrites, headers,
 * mirrors), weight changes, Services and clusters that come and go, virtual hosts that come and go, and
 * a route that sits on the same path prefix as a stable one but with a header match.
 */
function churnYaml(i: number, churnPort: number): string {
  const extra = `extra-${i % 7}`;
  const docs = [
    `apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: churn-marker, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /churn/marker } }]
      filters:
        - { type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-churn-version, value: "${i}" }] } }
      backendRefs: [{ name: churn, port: 80 }]
`,
    `apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: churn-paths, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /churn/${i} } }]
      backendRefs: [{ name: churn, port: 80, weight: ${1 + (i % 5)} }]
    - matches: [{ path: { type: PathPrefix, value: /stable }, headers: [{ name: x-churn, value: "${i}" }] }]
      backendRefs: [{ name: churn, port: 80 }]
`,
  ];
  if (i % 2 === 0) {
    docs.push(`${serviceYaml({ name: extra, endpoints: [{ host: '127.0.0.1', port: churnPort }] })}---
apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: churn-${extra}, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /churn/extra } }]
      filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: churn, port: 80 }, percent: 10 } }
      backendRefs: [{ name: ${extra}, port: 80, weight: ${i % 3} }, { name: churn, port: 80 }]
`);
  }
  if (i % 3 === 0) {
    docs.push(`apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: churn-filters, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /churn/cors } }]
      filters:
        - { type: CORS, cors: { allowOrigins: ["https://${i}.example"] } }
        - { type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /v${i} } } }
      backendRefs: [{ name: churn, port: 80 }]
    - matches: [{ path: { type: Exact, value: /churn/redirect } }]
      filters: [{ type: RequestRedirect, requestRedirect: { hostname: r${i}.example } }]
`);
  }
  if (i % 5 === 0) {
    docs.push(`apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: churn-host, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [churn-${i}.example]
  rules:
    - backendRefs: [{ name: churn, port: 80 }]
`);
  }
  return docs.join('---\n');
}

describe('route churn', () => {
  let skein: TestSkein | undefined;
  let stable: EchoServer;
  let churn: EchoServer;
  let address = '';

  beforeAll(async () => {
    address = randomLoopback();
    stable = await startEchoServer({ name: 'stable', host: '127.0.0.1' });
    churn = await startEchoServer({ name: 'churn', host: '127.0.0.1' });
    const services = [
      serviceYaml({ name: 'stable', endpoints: [{ host: '127.0.0.1', port: stable.port }] }),
      serviceYaml({ name: 'churn', endpoints: [{ host: '127.0.0.1', port: churn.port }] }),
    ].join('---\n');
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address),
        'services.yaml': services,
        'stable.yaml': STABLE_ROUTES,
        'churn.yaml': churnYaml(0, churn.port),
      },
    });
    await waitFor('the marker of edit 0', () => marker().then((v) => (v === '0' ? true : undefined)), 20_000);
  });

  afterAll(async () => {
    await skein?.stop();
    await stable?.close();
    await churn?.close();
  });

  function get(
    path: string,
    opts: { agent?: http.Agent; host?: string } = {},
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.get(
        {
          host: address,
          port: PORT,
          path,
          agent: opts.agent ?? false,
          timeout: 5000,
          headers: opts.host === undefined ? {} : { host: opts.host },
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            body += d;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.once('timeout', () => req.destroy(new Error(`${path}: no answer in time`)));
      req.once('error', reject);
    });
  }

  async function marker(): Promise<string | undefined> {
    const r = await get('/churn/marker');
    const v = r.headers['x-churn-version'];
    return typeof v === 'string' ? v : undefined;
  }

  /** How long the edits may take in all; the test's own timeout leaves room for setup checks after. */
  const EDIT_BUDGET_MS = 120_000;

  it(
    `serves untouched routes without a single non-2xx through ${EDITS} edits of other routes`,
    async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
      const results = { ok: 0, bad: [] as string[] };
      let editing = true;
      const deadline = Date.now() + EDIT_BUDGET_MS;
      const client = async (c: number): Promise<void> => {
        for (let n = 0; editing && Date.now() < deadline; n++) {
          // Alternate between the path route (shared virtual host) and the hostname route.
          const byHost = n % 2 === 1;
          try {
            const r = await get(`/stable/${c}/${n}`, {
              agent,
              ...(byHost ? { host: 'stable.example' } : {}),
            });
            const backend = (JSON.parse(r.body) as { backend?: string }).backend;
            if (r.status >= 200 && r.status < 300 && backend === 'stable') results.ok++;
            else
              results.bad.push(`${byHost ? 'host' : 'path'} ${r.status} ${backend ?? r.body.slice(0, 80)}`);
          } catch (e) {
            results.bad.push(`${byHost ? 'host' : 'path'} error ${String(e)}`);
          }
        }
      };
      const clients = Array.from({ length: CLIENTS }, (_, c) => client(c));
      try {
        for (let i = 1; i <= EDITS; i++) {
          const left = deadline - Date.now();
          if (left <= 0)
            throw new Error(`only ${i - 1} of ${EDITS} edits reached Envoy in ${EDIT_BUDGET_MS} ms`);
          await skein?.write('churn.yaml', churnYaml(i, churn.port));
          await waitFor(
            `edit ${i} to reach Envoy`,
            () => marker().then((v) => (v === String(i) ? true : undefined)),
            Math.min(10_000, left),
            5,
          );
        }
      } finally {
        editing = false;
        await Promise.all(clients);
        agent.destroy();
      }
      expect(results.bad.slice(0, 10)).toEqual([]);
      // The clients ran through the whole churn (at least a few requests per edit).
      expect(results.ok).toBeGreaterThan(EDITS * 2);
      // The last edit is what Envoy serves now: the edited routes did change.
      expect((await get(`/churn/${EDITS}/x`)).status).toBe(200);
      expect((await get('/churn/1/x')).status).toBe(404);
      expect((await get('/stable/x', { host: `churn-${EDITS}.example` })).status).toBe(200);
      expect(skein?.skein.envoy?.restarts).toBe(0);
    },
    EDIT_BUDGET_MS + 30_000,
  );
});
