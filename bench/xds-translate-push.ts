import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ControlPlane } from '../src/controlPlane.js';
import { startEchoServer } from '../src/echo/echoServer.js';
import { renderBootstrap } from '../src/envoy/bootstrap.js';
import { findEnvoy } from '../src/envoy/findEnvoy.js';
import { EnvoySupervisor } from '../src/envoy/supervisor.js';
import { silentLogger } from '../src/log.js';
import { emptyObjectSet, type HTTPRoute, type ObjectSet } from '../src/sources/objects.js';
import { createXdsServer, type XdsServer } from '../src/xds/server.js';
import { machineInfo, printTable, rssMiB } from './machine.js';
import type { Bench, BenchResult } from './run.js';

/**
 * Control-plane cost, with a real Envoy: for N HTTPRoutes, the time to translate (objects → encoded
 * snapshot), the time until Envoy has ACKed every type, and the RSS of Skein and Envoy; then one route
 * changed among N until Envoy serves it.
 *
 * Side by side in the same run, the baseline is a cold build: a fresh control plane (empty memo caches,
 * empty encoder) given the same objects. The incremental figures are reported as ratios against it.
 */

const GATEWAY_PORT = 8080;

export function objectSet(
  n: number,
  backendPort: number,
  address: string,
  changed?: { index: number; path: string },
): ObjectSet {
  const services = Math.max(1, Math.ceil(n / 10));
  const routes: HTTPRoute[] = [];
  for (let i = 0; i < n; i++) routes.push(route(i, services, changed?.index === i ? changed.path : `/r${i}`));
  const svc = [];
  const slices = [];
  for (let s = 0; s < services; s++) {
    svc.push({
      apiVersion: 'v1' as const,
      kind: 'Service' as const,
      metadata: { name: `svc-${s}`, namespace: 'bench' },
      spec: { ports: [{ name: 'http', port: 80 }] },
    });
    slices.push({
      apiVersion: 'discovery.k8s.io/v1' as const,
      kind: 'EndpointSlice' as const,
      metadata: {
        name: `svc-${s}-a`,
        namespace: 'bench',
        labels: { 'kubernetes.io/service-name': `svc-${s}` },
      },
      addressType: 'IPv4' as const,
      ports: [{ name: 'http', port: backendPort }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
  }
  return {
    ...emptyObjectSet,
    gatewayClasses: [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GatewayClass',
        metadata: { name: 'skein', generation: 1 },
        spec: { controllerName: 'skein.io/gateway-controller' },
      },
    ],
    gateways: [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        metadata: { name: 'edge', namespace: 'bench', generation: 1 },
        spec: {
          gatewayClassName: 'skein',
          addresses: [{ type: 'IPAddress', value: address }],
          listeners: [
            {
              name: 'http',
              protocol: 'HTTP',
              port: GATEWAY_PORT,
              allowedRoutes: { namespaces: { from: 'Same' } },
            },
          ],
        },
      },
    ],
    httpRoutes: routes,
    services: svc,
    endpointSlices: slices,
    origins: new Map(),
  };
}

/** Route objects are cached so that an unchanged route keeps its identity between builds, as a source would. */
const routeCache = new Map<string, HTTPRoute>();
function route(i: number, services: number, p: string): HTTPRoute {
  const key = `${i}\0${p}`;
  let r = routeCache.get(key);
  if (r === undefined) {
    r = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `route-${i}`, namespace: 'bench', generation: 1 },
      spec: {
        parentRefs: [{ name: 'edge' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: p } }],
            backendRefs: [{ name: `svc-${i % services}`, port: 80 }],
          },
        ],
      },
    };
    routeCache.set(key, r);
  }
  return r;
}

/** Resolves when every stream of the envoy group has ACKed what it was sent, and nothing is in flight. */
async function untilAcked(xds: XdsServer, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  const deadline = t0 + timeoutMs;
  while (performance.now() < deadline) {
    const st = xds.status();
    const envoyStreams = st.streams.filter((s) => s.group === 'envoy');
    const settled =
      envoyStreams.length > 0 &&
      envoyStreams.every((s) =>
        s.types.every((t) => t.pendingNonce === null && t.sentVersion === t.ackedVersion),
      );
    if (settled) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new Error(`Envoy did not ACK within ${timeoutMs} ms`);
}

async function untilServed(url: string, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return performance.now() - t0;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`${url} not served within ${timeoutMs} ms`);
}

export const bench: Bench = {
  name: 'xds-translate-push',
  description: 'translate and push N HTTPRoutes to a real Envoy; one change among N',
  async run({ quick }): Promise<BenchResult> {
    const sizes = quick ? [10, 100] : [100, 1000, 10_000];
    const envoyBin = await findEnvoy();
    const backend = await startEchoServer({ name: 'bench' });
    const rows: Record<string, string | number>[] = [];
    const changeRows: Record<string, string | number>[] = [];
    try {
      for (const n of sizes) {
        const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-bench-'));
        const address = '127.0.0.1';
        const cp = new ControlPlane({ logger: silentLogger });
        const xds = createXdsServer({ cache: cp.cache, logger: silentLogger });
        const socketPath = path.join(runDir, 'xds.sock');
        await xds.listen(`unix://${socketPath}`);
        const bootstrapPath = path.join(runDir, 'bootstrap.json');
        await writeFile(
          bootstrapPath,
          JSON.stringify(
            renderBootstrap({
              nodeId: `bench-${n}`,
              nodeCluster: 'bench',
              xds: { socketPath },
              adminPort: 0,
              delta: true,
            }),
          ),
        );
        const envoy = new EnvoySupervisor({
          envoyPath: envoyBin.path,
          bootstrapPath,
          logger: silentLogger,
          runDir,
          drainTimeoutMs: 0,
          concurrency: 1,
        });
        try {
          await envoy.start();
          const objects = objectSet(n, backend.port, address);
          const rss0 = rssMiB();
          // Cold build: translate + encode everything, then until Envoy has ACKed it all.
          const t0 = performance.now();
          const report = cp.apply(objects);
          const translateMs = performance.now() - t0;
          if (!report.published) throw new Error(`not published: ${report.errors.join('; ')}`);
          const ackMs = await untilAcked(xds, 120_000);
          const last = `http://${address}:${GATEWAY_PORT}/r${n - 1}`;
          await untilServed(last, 60_000);
          const envoyPid = envoy.pid;
          rows.push({
            routes: n,
            'translate ms': translateMs,
            'until ACK ms': ackMs,
            'total ms': translateMs + ackMs,
            'skein RSS MiB': rssMiB(),
            'skein ΔRSS MiB': rssMiB() - rss0,
            'envoy RSS MiB': envoyPid === undefined ? Number.NaN : rssMiB(envoyPid),
          });

          // One change among N: incremental (warm caches) vs a cold rebuild of the same objects.
          const index = Math.floor(n / 2);
          const changedPath = `/changed-${index}`;
          const changedObjects = objectSet(n, backend.port, address, { index, path: changedPath });
          const c0 = performance.now();
          const inc = cp.apply(changedObjects);
          const incTranslate = performance.now() - c0;
          await untilServed(`http://${address}:${GATEWAY_PORT}${changedPath}`, 30_000);
          const incServed = performance.now() - c0;

          const cold = new ControlPlane({ logger: silentLogger });
          const k0 = performance.now();
          cold.apply(changedObjects);
          const coldTranslate = performance.now() - k0;
          changeRows.push({
            routes: n,
            'incremental translate ms': incTranslate,
            'resources encoded': inc.encoded,
            'edit → served ms': incServed,
            'cold translate ms (baseline)': coldTranslate,
            'incremental / cold': incTranslate / coldTranslate,
          });
        } finally {
          await envoy.stop();
          await xds.close();
          await rm(runDir, { recursive: true, force: true });
        }
      }
    } finally {
      await backend.close();
    }
    printTable('Translate and push N HTTPRoutes to a real Envoy (delta ADS, 1 worker)', rows);
    printTable(
      'One route changed among N: incremental build vs cold rebuild (baseline), side by side',
      changeRows,
    );
    return {
      name: 'xds-translate-push',
      machine: machineInfo(envoyBin.version),
      push: rows,
      oneChange: changeRows,
    };
  },
};
