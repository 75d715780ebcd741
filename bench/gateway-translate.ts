import { performance } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';
import { createGatewayTranslator, type GatewayTranslator } from '../src/gateway/translate.js';
import {
  type EndpointSlice,
  emptyObjectSet,
  type Gateway,
  type GRPCRoute,
  type HTTPRoute,
  type ObjectSet,
  type Service,
  type UDPRoute,
} from '../src/sources/objects.js';
import { machineInfo, printTable } from './machine.js';
import type { Bench, BenchResult } from './run.js';

/**
 * The Gateway API translator alone (objects → IR + statuses, no xDS, no Envoy), on a mix of route
 * kinds: per unit, 500 HTTPRoutes and 250 GRPCRoutes (each its own hostname) on one HTTP listener, and
 * 100 UDPRoutes, each on a UDP listener of its own (50 listeners per Gateway, the CRD's limit is 64).
 *
 * 1. A full translation of one unit by a fresh translator (the work a first build, or a restart, does),
 *    after warm-up runs so the JIT has compiled it: time per run (median) and bytes allocated per run
 *    (median), measured with v8.GCProfiler (heap growth plus what each GC during the run collected).
 *    Target (issue 3): ≤ 50 ms.
 * 2. One route changed, by a warm translator (every earlier object reused), at 1×, 2× and 4× the unit,
 *    side by side with the baseline: a cold translation of the same objects. If the work grows with
 *    the change and not with the input, the incremental time stays nearly flat while the cold one
 *    grows 4×, and their ratio falls.
 *
 * Objects are built once per size and reused, as a source hands unchanged objects back by identity.
 */

const UNIT = { http: 500, grpc: 250, udp: 100 } as const;
const UDP_PER_GATEWAY = 50;
const TIME = '2024-01-01T00:00:00Z';

export interface Mix {
  readonly http: number;
  readonly grpc: number;
  readonly udp: number;
}

/** The objects for a mix of routes; `changed` replaces HTTPRoute `changed.index` by one with another path. */
export function objectsFor(
  mix: Mix,
  changed?: { readonly index: number; readonly version: number },
): ObjectSet {
  const base = baseObjects(mix);
  if (changed === undefined) return base.objects;
  const httpRoutes = [...base.objects.httpRoutes];
  httpRoutes[changed.index] = httpRoute(changed.index, mix, `/r${changed.index}/v${changed.version}`);
  return { ...base.objects, httpRoutes };
}

const baseCache = new Map<string, { objects: ObjectSet }>();

function baseObjects(mix: Mix): { objects: ObjectSet } {
  const key = `${mix.http}/${mix.grpc}/${mix.udp}`;
  const cached = baseCache.get(key);
  if (cached !== undefined) return cached;
  const services: Service[] = [];
  const endpointSlices: EndpointSlice[] = [];
  const service = (name: string, port: number, protocol: 'TCP' | 'UDP', appProtocol?: string): void => {
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'bench' },
      spec: { ports: [{ name: 'p', port, protocol, ...(appProtocol === undefined ? {} : { appProtocol }) }] },
    });
    endpointSlices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-a`, namespace: 'bench', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'p', port, protocol }],
      endpoints: [
        { addresses: ['10.0.0.1'], conditions: { ready: true } },
        { addresses: ['10.0.0.2'], conditions: { ready: true } },
      ],
    });
  };
  for (let s = 0; s < serviceCount(mix.http); s++) service(`web-${s}`, 80, 'TCP');
  for (let s = 0; s < serviceCount(mix.grpc); s++) service(`grpc-${s}`, 9000, 'TCP', 'kubernetes.io/h2c');
  for (let s = 0; s < serviceCount(mix.udp); s++) service(`dns-${s}`, 53, 'UDP');

  const gateways: Gateway[] = [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'edge', namespace: 'bench' },
      spec: { gatewayClassName: 'skein', listeners: [{ name: 'http', protocol: 'HTTP', port: 8080 }] },
    },
  ];
  for (let g = 0; g * UDP_PER_GATEWAY < mix.udp; g++) {
    const count = Math.min(UDP_PER_GATEWAY, mix.udp - g * UDP_PER_GATEWAY);
    gateways.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: `udp-${g}`, namespace: 'bench' },
      spec: {
        gatewayClassName: 'skein',
        listeners: Array.from({ length: count }, (_, i) => ({
          name: `u${i}`,
          protocol: 'UDP',
          port: 20_000 + g * UDP_PER_GATEWAY + i,
        })),
      },
    });
  }
  const httpRoutes = Array.from({ length: mix.http }, (_, i) => httpRoute(i, mix, `/r${i}`));
  const grpcRoutes: GRPCRoute[] = Array.from({ length: mix.grpc }, (_, i) => ({
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GRPCRoute',
    metadata: { name: `grpc-${i}`, namespace: 'bench' },
    spec: {
      parentRefs: [{ name: 'edge' }],
      hostnames: [`g${i}.grpc.example.com`],
      rules: [
        {
          matches: [
            { method: { service: `pkg${i}.Svc`, method: 'Get' } },
            { method: { service: `pkg${i}.Svc` } },
          ],
          backendRefs: [{ name: `grpc-${i % serviceCount(mix.grpc)}`, port: 9000 }],
        },
      ],
    },
  }));
  const udpRoutes: UDPRoute[] = Array.from({ length: mix.udp }, (_, i) => ({
    apiVersion: 'gateway.networking.k8s.io/v1alpha2',
    kind: 'UDPRoute',
    metadata: { name: `dns-${i}`, namespace: 'bench' },
    spec: {
      parentRefs: [
        { name: `udp-${Math.floor(i / UDP_PER_GATEWAY)}`, sectionName: `u${i % UDP_PER_GATEWAY}` },
      ],
      rules: [{ backendRefs: [{ name: `dns-${i % serviceCount(mix.udp)}`, port: 53 }] }],
    },
  }));
  const objects: ObjectSet = {
    ...emptyObjectSet,
    gatewayClasses: [
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'GatewayClass',
        metadata: { name: 'skein' },
        spec: { controllerName: 'skein.io/gateway-controller' },
      },
    ],
    gateways,
    httpRoutes,
    grpcRoutes,
    udpRoutes,
    services,
    endpointSlices,
    origins: new Map(),
  };
  const entry = { objects };
  baseCache.set(key, entry);
  return entry;
}

/** One Service per ten routes of a kind. */
function serviceCount(routes: number): number {
  return Math.max(1, Math.ceil(routes / 10));
}

function httpRoute(i: number, mix: Mix, path: string): HTTPRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: `web-${i}`, namespace: 'bench' },
    spec: {
      parentRefs: [{ name: 'edge' }],
      hostnames: [`h${i}.example.com`],
      rules: [
        {
          matches: [
            { path: { type: 'PathPrefix', value: path } },
            { headers: [{ name: 'x-canary', value: 'yes' }] },
          ],
          backendRefs: [
            { name: `web-${i % serviceCount(mix.http)}`, port: 80, weight: 9 },
            { name: `web-${(i + 1) % serviceCount(mix.http)}`, port: 80, weight: 1 },
          ],
        },
      ],
    },
  };
}

/**
 * The wall time, the CPU time (user + system: less sensitive to other processes on a shared machine)
 * and the bytes allocated by one call of `f`.
 */
function measure(f: () => void): { ms: number; cpuMs: number; bytes: number } {
  const profiler = new GCProfiler();
  profiler.start();
  const before = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  f();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const after = process.memoryUsage().heapUsed;
  const gcs = profiler.stop().statistics;
  // Heap growth undercounts by what the GCs during the run collected; add it back.
  const collected = gcs.reduce(
    (sum, g) =>
      sum + Math.max(0, g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize),
    0,
  );
  return { ms, cpuMs, bytes: after - before + collected };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? Number.NaN)
    : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const MiB = 2 ** 20;

function routesIn(mix: Mix): number {
  return mix.http + mix.grpc + mix.udp;
}

function scaled(k: number, unit: Mix): Mix {
  return { http: unit.http * k, grpc: unit.grpc * k, udp: unit.udp * k };
}

/** Checks that a build served what it should: the translator must not be measured doing nothing. */
function check(t: GatewayTranslator, objects: ObjectSet, mix: Mix): void {
  const r = t.translate(objects, { transitionTime: TIME });
  const http = r.ir.listeners.find((l) => l.port === 8080);
  const hosts = http?.virtualHosts.length ?? 0;
  const udp = r.ir.listeners.filter((l) => l.protocol === 'UDP').length;
  // Every HTTPRoute and GRPCRoute hostname is a virtual host (plus the listener's `*`); every UDP port a listener.
  if (hosts !== mix.http + mix.grpc + 1 || udp !== mix.udp) {
    throw new Error(
      `bench objects translate wrong: ${hosts} virtual hosts, ${udp} UDP listeners for ${JSON.stringify(mix)}`,
    );
  }
}

export const bench: Bench = {
  name: 'gateway-translate',
  description:
    'Gateway API translator: 500 HTTPRoutes + 250 GRPCRoutes + 100 UDPRoutes; one change at 1x/2x/4x',
  async run({ quick }): Promise<BenchResult> {
    const unit: Mix = quick ? { http: 10, grpc: 5, udp: 2 } : UNIT;
    const warmup = quick ? 1 : 5;
    const runs = quick ? 3 : 15;
    const scales = quick ? [1, 2] : [1, 2, 4];

    // 1. Full translations of one unit by fresh translators.
    const objects = objectsFor(unit);
    check(createGatewayTranslator(), objects, unit);
    for (let i = 0; i < warmup; i++) createGatewayTranslator().translate(objects, { transitionTime: TIME });
    const full = Array.from({ length: runs }, () =>
      measure(() => createGatewayTranslator().translate(objects, { transitionTime: TIME })),
    );
    // A warm translator given the same objects again: what a rebuild with no change costs.
    const warm = createGatewayTranslator();
    warm.translate(objects, { transitionTime: TIME });
    const same = Array.from({ length: runs }, () =>
      measure(() => warm.translate(objects, { transitionTime: TIME })),
    );
    const fullRow = {
      routes: routesIn(unit),
      'HTTP / gRPC / UDP': `${unit.http} / ${unit.grpc} / ${unit.udp}`,
      'full ms (median)': median(full.map((m) => m.ms)),
      'full CPU ms': median(full.map((m) => m.cpuMs)),
      'full MiB allocated': median(full.map((m) => m.bytes)) / MiB,
      'no change ms': median(same.map((m) => m.ms)),
      'no change MiB allocated': median(same.map((m) => m.bytes)) / MiB,
      'target ms': 50,
    };
    printTable(`Full translation by a fresh translator, median of ${runs} runs after ${warmup} warm-up`, [
      fullRow,
    ]);

    // 2. One route changed, by a warm translator, against a cold translation of the same objects.
    const changeRows: Record<string, string | number>[] = [];
    for (const k of scales) {
      const mix = scaled(k, unit);
      const input = objectsFor(mix);
      const translator = createGatewayTranslator();
      check(translator, input, mix);
      let previous = translator.translate(input, { transitionTime: TIME }).statuses;
      for (let i = 0; i < warmup; i++) createGatewayTranslator().translate(input, { transitionTime: TIME });
      const cold: { ms: number; cpuMs: number; bytes: number }[] = [];
      const inc: { ms: number; cpuMs: number; bytes: number }[] = [];
      for (let r = 0; r < runs; r++) {
        // Each run changes another route (then the next run's input differs from this one by one route too).
        const changed = objectsFor(mix, { index: (r * 7919) % mix.http, version: r });
        inc.push(
          measure(() => {
            previous = translator.translate(changed, { transitionTime: TIME, previous }).statuses;
          }),
        );
        cold.push(measure(() => createGatewayTranslator().translate(changed, { transitionTime: TIME })));
      }
      const coldMs = median(cold.map((m) => m.ms));
      const incMs = median(inc.map((m) => m.ms));
      changeRows.push({
        size: `${k}x`,
        routes: routesIn(mix),
        'cold ms (baseline)': coldMs,
        'one change ms': incMs,
        'one change / cold': incMs / coldMs,
        'cold CPU ms': median(cold.map((m) => m.cpuMs)),
        'one change CPU ms': median(inc.map((m) => m.cpuMs)),
        'cold MiB allocated': median(cold.map((m) => m.bytes)) / MiB,
        'one change MiB allocated': median(inc.map((m) => m.bytes)) / MiB,
      });
    }
    const first = changeRows[0];
    for (const row of changeRows) {
      row['cold vs 1x'] = (row['cold ms (baseline)'] as number) / (first?.['cold ms (baseline)'] as number);
      row['one change vs 1x'] = (row['one change ms'] as number) / (first?.['one change ms'] as number);
    }
    printTable(
      'One HTTPRoute changed: warm translator vs a cold translation of the same objects (baseline)',
      changeRows,
    );
    return {
      name: 'gateway-translate',
      machine: machineInfo(),
      runs,
      warmup,
      full: fullRow,
      oneChange: changeRows,
    };
  },
};
