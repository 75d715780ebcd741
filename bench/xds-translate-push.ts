import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { stringify } from 'yaml';
import { ControlPlane } from '../src/controlPlane.js';
import { startEchoServer } from '../src/echo/echoServer.js';
import { renderBootstrap } from '../src/envoy/bootstrap.js';
import { findEnvoy } from '../src/envoy/findEnvoy.js';
import { EnvoySupervisor } from '../src/envoy/supervisor.js';
import { silentLogger } from '../src/log.js';
import { emptyObjectSet, type HTTPRoute, type ObjectSet } from '../src/sources/objects.js';
import { startStandalone } from '../src/standalone.js';
import { envoyRoot } from '../src/xds/proto.js';
import { createXdsServer, type XdsServer } from '../src/xds/server.js';
import { compileForChild } from './compiled.js';
import { machineInfo, printTable, rssMiB } from './machine.js';
import type { Bench, BenchResult } from './run.js';

/**
 * Control-plane cost, with a real Envoy: for N HTTPRoutes, the time to translate (objects → encoded
 * snapshot), the time until Envoy has ACKed every type, and the RSS of Skein and Envoy; then one route
 * changed among N until Envoy serves it; then the same through `skein up`'s file source (a YAML file
 * rewritten until Envoy serves the change).
 *
 * Each N runs in a fresh child process (this file with `--child`), so the RSS at N holds nothing left
 * over from a smaller N. Side by side in the same run, the baseline is a cold build: a fresh control
 * plane (empty memo caches, empty encoder) given the same objects. The incremental figures are reported
 * as ratios against it.
 */

/** The Gateway's default port in objectSet (bench/xds-fanout.ts never serves it). */
const DEFAULT_GATEWAY_PORT = 8080;

export interface ObjectSetOptions {
  /** Where the EndpointSlices point (127.0.0.1). Default 9 (nothing is served there). */
  readonly backendPort?: number;
  /** The Gateway's address. Default 127.0.0.1. */
  readonly address?: string;
  /** Route `index` gets this path instead of `/r<index>`. */
  readonly changed?: { readonly index: number; readonly path: string };
  readonly gatewayPort?: number;
  /** Spread the routes over this many hostnames (`h<i mod k>.bench.example`); 0: no hostnames, one virtual host. */
  readonly hostnames?: number;
}

/** The hostname of route i when the routes are spread over `hostnames` (undefined: none). */
export function routeHost(i: number, hostnames: number): string | undefined {
  return hostnames > 0 ? `h${i % hostnames}.bench.example` : undefined;
}

/**
 * N HTTPRoutes on one Gateway listener, one path prefix each, over N/10 Services with one endpoint each.
 * Unchanged routes are the same objects from one call to the next (as a source keeps them).
 */
export function objectSet(n: number, o: ObjectSetOptions = {}): ObjectSet {
  const backendPort = o.backendPort ?? 9;
  const address = o.address ?? '127.0.0.1';
  const gatewayPort = o.gatewayPort ?? DEFAULT_GATEWAY_PORT;
  const hostnames = o.hostnames ?? 0;
  const changed = o.changed;
  const services = Math.max(1, Math.ceil(n / 10));
  const routes: HTTPRoute[] = [];
  for (let i = 0; i < n; i++)
    routes.push(route(i, services, changed?.index === i ? changed.path : `/r${i}`, routeHost(i, hostnames)));
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
              port: gatewayPort,
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
function route(i: number, services: number, p: string, host: string | undefined): HTTPRoute {
  const key = `${i}\0${p}\0${host ?? ''}`;
  let r = routeCache.get(key);
  if (r === undefined) {
    r = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: `route-${i}`, namespace: 'bench', generation: 1 },
      spec: {
        parentRefs: [{ name: 'edge' }],
        ...(host === undefined ? {} : { hostnames: [host] }),
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

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });

/** One GET through Envoy: its status, or 0 when the request failed. */
function get(port: number, urlPath: string, host: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        agent: keepAlive,
        timeout: 1000,
        ...(host === undefined ? {} : { headers: { host } }),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', () => resolve(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Polls Envoy (back to back, 1 ms apart) until `urlPath` answers 200; milliseconds it took. */
async function untilServed(
  port: number,
  urlPath: string,
  host: string | undefined,
  timeoutMs: number,
): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if ((await get(port, urlPath, host)) === 200) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1));
  }
  throw new Error(`${urlPath} (host ${host ?? '*'}) not served within ${timeoutMs} ms`);
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick), for the Gateway listener. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** The edits of one run: `samples` different routes, spread over the N. */
function editIndexes(n: number, samples: number): number[] {
  return Array.from({ length: samples }, (_, k) => Math.floor(((k + 0.5) * n) / samples));
}

type Row = Record<string, string | number>;

/**
 * In a child: cold build of N routes until Envoy has ACKed and serves them, RSS, then `samples` edits
 * of one route each (incremental apply until served), and a cold rebuild of the last edit's objects.
 */
async function measurePush(
  n: number,
  hostnames: number,
  samples: number,
): Promise<{ push: Row; oneChange: Row }> {
  const envoyBin = await findEnvoy();
  const backend = await startEchoServer({ name: 'bench' });
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-bench-'));
  const address = '127.0.0.1';
  const port = await freePort();
  const cp = new ControlPlane({ logger: silentLogger });
  const xds = createXdsServer({ cache: cp.cache, logger: silentLogger });
  const socketPath = path.join(runDir, 'xds.sock');
  const envoy = new EnvoySupervisor({
    envoyPath: envoyBin.path,
    bootstrapPath: path.join(runDir, 'bootstrap.json'),
    logger: silentLogger,
    runDir,
    drainTimeoutMs: 0,
    concurrency: 1,
  });
  try {
    await xds.listen(`unix://${socketPath}`);
    await writeFile(
      path.join(runDir, 'bootstrap.json'),
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
    await envoy.start();
    const base = { backendPort: backend.port, address, gatewayPort: port, hostnames };
    const objects = objectSet(n, base);
    // Loaded once per process (about 100 ms), before anything is timed.
    envoyRoot();
    global.gc?.();
    const rss0 = rssMiB();
    // Cold build: translate + encode everything, then until Envoy has ACKed it all.
    const t0 = performance.now();
    const report = cp.apply(objects);
    const translateMs = performance.now() - t0;
    if (!report.published) throw new Error(`not published: ${report.errors.join('; ')}`);
    const ackMs = await untilAcked(xds, 120_000);
    await untilServed(port, `/r${n - 1}`, routeHost(n - 1, hostnames), 60_000);
    global.gc?.();
    const envoyPid = envoy.pid;
    const push: Row = {
      routes: n,
      hostnames,
      'translate ms': translateMs,
      'until ACK ms': ackMs,
      'total ms': translateMs + ackMs,
      'skein RSS MiB': rssMiB(),
      'skein RSS before MiB': rss0,
      'envoy RSS MiB': envoyPid === undefined ? Number.NaN : rssMiB(envoyPid),
    };

    // One change among N: incremental (warm caches), each a different route, until Envoy has ACKed it
    // (Envoy ACKs a route configuration once it has applied it) and until it serves it.
    const translate: number[] = [];
    const acked: number[] = [];
    const served: number[] = [];
    let encoded = 0;
    let changed = objects;
    for (const [k, index] of editIndexes(n, samples).entries()) {
      const changedPath = `/changed-${k}`;
      changed = objectSet(n, { ...base, changed: { index, path: changedPath } });
      const c0 = performance.now();
      const inc = cp.apply(changed);
      const c1 = performance.now();
      translate.push(c1 - c0);
      encoded = inc.encoded;
      acked.push((await untilAcked(xds, 30_000)) + c1 - c0);
      await untilServed(port, changedPath, routeHost(index, hostnames), 30_000);
      served.push(performance.now() - c0);
    }
    const cold = new ControlPlane({ logger: silentLogger });
    const k0 = performance.now();
    cold.apply(changed);
    const coldTranslate = performance.now() - k0;
    const oneChange: Row = {
      routes: n,
      hostnames,
      edits: samples,
      'apply ms (Skein)': median(translate),
      'resources encoded': encoded,
      'until ACK ms': median(acked),
      'edit → served ms': median(served),
      'max edit → served ms': Math.max(...served),
      'cold apply ms (baseline)': coldTranslate,
      'incremental / cold': median(translate) / coldTranslate,
    };
    return { push, oneChange };
  } finally {
    await envoy.stop();
    await xds.close();
    await backend.close();
    await rm(runDir, { recursive: true, force: true });
  }
}

/** Routes per YAML file in the file-source run (an application's worth). */
const ROUTES_PER_FILE = 10;

function routeFile(objects: ObjectSet, file: number): string {
  const routes = objects.httpRoutes.slice(file * ROUTES_PER_FILE, (file + 1) * ROUTES_PER_FILE);
  return routes.map((r) => stringify(r)).join('---\n');
}

/**
 * In a child: `skein up` (startStandalone: file source, ControlPlane, xDS, a supervised Envoy) on a
 * directory of N routes in files of ROUTES_PER_FILE; then `samples` edits, each rewriting one file with
 * one route's path changed, timed from the write until Envoy serves the new path. The file source waits
 * for 50 ms of quiet after the last event (its debounce), which is in the figure.
 */
async function measureFileEdit(n: number, samples: number): Promise<Row> {
  const backend = await startEchoServer({ name: 'bench' });
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-bench-file-'));
  const configDir = path.join(runDir, 'config');
  await mkdir(configDir);
  const address = '127.0.0.1';
  const port = await freePort();
  const base = { backendPort: backend.port, address, gatewayPort: port };
  const objects = objectSet(n, base);
  const infra = [
    ...objects.gatewayClasses,
    ...objects.gateways,
    ...objects.services,
    ...objects.endpointSlices,
  ];
  await writeFile(path.join(configDir, 'gateway.yaml'), infra.map((o) => stringify(o)).join('---\n'));
  const files = Math.ceil(n / ROUTES_PER_FILE);
  for (let f = 0; f < files; f++)
    await writeFile(path.join(configDir, `routes-${f}.yaml`), routeFile(objects, f));
  const t0 = performance.now();
  const skein = await startStandalone({
    configDir,
    logger: silentLogger,
    xds: { socketPath: path.join(runDir, 'xds.sock') },
    adminPort: 0,
    statusPort: 0,
    delta: true,
    envoy: true,
    nodeId: `bench-file-${n}`,
    nodeCluster: 'bench',
    runDir,
    drainTimeoutMs: 0,
    envoyLogLevel: 'error',
  });
  try {
    await skein.firstBuild;
    await untilServed(port, `/r${n - 1}`, undefined, 120_000);
    const startMs = performance.now() - t0;
    const served: number[] = [];
    for (const [k, index] of editIndexes(n, samples).entries()) {
      const changedPath = `/file-changed-${k}`;
      const edited = objectSet(n, { ...base, changed: { index, path: changedPath } });
      const file = Math.floor(index / ROUTES_PER_FILE);
      const c0 = performance.now();
      await writeFile(path.join(configDir, `routes-${file}.yaml`), routeFile(edited, file));
      await untilServed(port, changedPath, undefined, 30_000);
      served.push(performance.now() - c0);
    }
    return {
      routes: n,
      files: files + 1,
      edits: samples,
      'skein up → all served ms': startMs,
      'file edit → served ms': median(served),
      'max ms': Math.max(...served),
    };
  } finally {
    await skein.stop();
    await backend.close();
    await rm(runDir, { recursive: true, force: true });
  }
}

type ChildMode = 'push' | 'file';

/**
 * Runs one measurement in a fresh Node process (this file compiled to JavaScript, `--child`), so nothing
 * is left over in its heap and no TypeScript loader is counted in its RSS.
 */
function inChild<T>(
  entry: string,
  mode: ChildMode,
  n: number,
  hostnames: number,
  samples: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--expose-gc', entry, '--child', mode, String(n), String(hostnames), String(samples)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || line === undefined)
        reject(new Error(`xds-translate-push child (${mode} ${n}) exited with ${code}: ${out.slice(-2000)}`));
      else resolve(JSON.parse(line.slice('RESULT '.length)) as T);
    });
  });
}

export const bench: Bench = {
  name: 'xds-translate-push',
  description:
    'translate and push N HTTPRoutes to a real Envoy; one change among N; the same through the file source',
  async run({ quick }): Promise<BenchResult> {
    const sizes = quick ? [10, 100] : [100, 1000, 10_000];
    // The same 10k routes spread over 1,000 hostnames (1,000 virtual hosts of 10 routes in the one route
    // configuration), beside the 10k routes of one virtual host above.
    const spread = quick ? [{ n: 100, hostnames: 10 }] : [{ n: 10_000, hostnames: 1000 }];
    const samples = quick ? 2 : 5;
    const envoyBin = await findEnvoy();
    const rows: Row[] = [];
    const changeRows: Row[] = [];
    const fileRows: Row[] = [];
    const compiled = await compileForChild(import.meta.filename);
    try {
      for (const { n, hostnames } of [...sizes.map((n) => ({ n, hostnames: 0 })), ...spread]) {
        const r = await inChild<{ push: Row; oneChange: Row }>(compiled.entry, 'push', n, hostnames, samples);
        rows.push(r.push);
        changeRows.push(r.oneChange);
      }
      for (const n of sizes) fileRows.push(await inChild<Row>(compiled.entry, 'file', n, 0, samples));
    } finally {
      await compiled.remove();
    }
    printTable(
      'Translate and push N HTTPRoutes to a real Envoy (delta ADS, 1 worker; each N in a fresh process)',
      rows,
    );
    printTable(
      `One route changed among N (median of ${samples} edits): incremental build vs cold rebuild (baseline), side by side`,
      changeRows,
    );
    printTable(
      `skein up (file source): one YAML file of ${ROUTES_PER_FILE} routes rewritten until Envoy serves the change (median of ${samples}; includes the 50 ms debounce)`,
      fileRows,
    );
    return {
      name: 'xds-translate-push',
      machine: machineInfo(envoyBin.version),
      push: rows,
      oneChange: changeRows,
      fileEdit: fileRows,
    };
  },
};

if (process.argv[2] === '--child') {
  const [mode, n, hostnames, samples] = [
    process.argv[3] as ChildMode,
    Number(process.argv[4]),
    Number(process.argv[5]),
    Number(process.argv[6]),
  ];
  const result =
    mode === 'push' ? await measurePush(n, hostnames, samples) : await measureFileEdit(n, samples);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}
