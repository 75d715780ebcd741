import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ReservedSocket } from './gateway/listeners.js';
import { createGatewayTranslator } from './gateway/translate.js';
import { createIngressTranslator, type IngressConfig } from './ingress/translate.js';
import type { Logger } from './log.js';
import type { Ir } from './model/ir.js';
import { createIrMerger } from './model/merge.js';
import type { Diagnostic, ObjectSet, ObjectStatus } from './sources/objects.js';
import { formatDiagnostic } from './sources/objects.js';
import { SnapshotCache } from './xds/cache.js';
import { ResourceEncoder } from './xds/resource.js';
import { checkConsistency, createSnapshot, type Snapshot } from './xds/snapshot.js';
import { createIrTranslator, type IrTranslator } from './xds/translate/translate.js';

/** A build threw: a bug. Nothing is published; the last good snapshot keeps serving. */
const BUILD_FAILED = 'SKEIN_BUILD_FAILED';

/** The node groups Skein serves. Envoys get socket listeners; proxyless gRPC clients get api_listeners. */
export type NodeFlavor = 'envoy' | 'grpc';

export interface XdsNodeInfo {
  readonly id: string;
  readonly cluster: string;
  readonly userAgentName: string;
  readonly metadata?: unknown;
}

/**
 * Which snapshot a node gets. gRPC's proxyless clients announce themselves in user_agent_name
 * ("gRPC Node Pure JS", "gRPC Go", ...); every other node is an Envoy.
 */
export function nodeFlavor(node: XdsNodeInfo): NodeFlavor {
  return /^grpc/i.test(node.userAgentName) ? 'grpc' : 'envoy';
}

export interface BuildReport {
  readonly at: string;
  readonly durationMs: number;
  readonly translateMs: number;
  readonly resources: number;
  readonly encoded: number;
  readonly diagnostics: readonly Diagnostic[];
  readonly published: boolean;
  readonly errors: readonly string[];
}

/**
 * The pure-ish middle of Skein: objects in, snapshots out. It owns the translators (with their
 * per-object memo caches), the encoder and the snapshot cache, and keeps the last computed statuses so
 * that unchanged conditions keep their lastTransitionTime. It does no I/O of its own; sources feed it
 * and the xDS server reads its cache.
 */
export class ControlPlane {
  readonly cache: SnapshotCache;
  readonly registry: Registry;
  readonly #logger: Logger;
  readonly #gateway = createGatewayTranslator();
  readonly #ingress = createIngressTranslator();
  readonly #merge = createIrMerger();
  /** Each translator gets back its own last statuses (the Gateway one takes a fast path on identity). */
  #gatewayStatuses: readonly ObjectStatus[] = [];
  #ingressStatuses: readonly ObjectStatus[] = [];
  readonly #ingressConfig: IngressConfig;
  readonly #gatewayController: string | undefined;
  readonly #envoy: IrTranslator;
  readonly #encoder = new ResourceEncoder();
  #statuses: readonly ObjectStatus[] = [];
  #ir: Ir | undefined;
  #lastReport: BuildReport | undefined;
  #reported = new Set<string>();
  readonly #metrics: {
    builds: Counter;
    buildSeconds: Histogram;
    resources: Gauge;
    diagnostics: Gauge;
  };

  /** Sockets Gateway listeners cannot take (Envoy's admin port, Skein's status port). */
  readonly #reservedSockets: readonly ReservedSocket[];
  /** The same for Ingresses, plus the embedder's own `ingress.reservedSockets`. */
  readonly #ingressReserved: readonly ReservedSocket[];

  constructor(deps: {
    logger: Logger;
    registry?: Registry;
    clock?: () => Date;
    reservedSockets?: readonly ReservedSocket[];
    /** Ingress settings from configuration (controller name, default address and ports, mode). */
    ingress?: IngressConfig;
    /** GatewayClasses with this controllerName are Skein's (default skein.io/gateway-controller). */
    gatewayControllerName?: string;
    /** The IR → Envoy translator; only tests of the publish path pass another. */
    envoyTranslator?: IrTranslator;
  }) {
    this.#envoy = deps.envoyTranslator ?? createIrTranslator();
    this.#logger = deps.logger;
    this.#ingressConfig = deps.ingress ?? {};
    this.#gatewayController = deps.gatewayControllerName;
    this.#reservedSockets = deps.reservedSockets ?? [];
    this.#ingressReserved = [...this.#reservedSockets, ...(this.#ingressConfig.reservedSockets ?? [])];
    this.#clock = deps.clock ?? (() => new Date());
    this.registry = deps.registry ?? new Registry();
    this.cache = new SnapshotCache({ groupOf: nodeFlavor });
    this.#metrics = {
      builds: new Counter({
        name: 'skein_builds_total',
        help: 'Config builds by result',
        labelNames: ['result'],
        registers: [this.registry],
      }),
      buildSeconds: new Histogram({
        name: 'skein_build_duration_seconds',
        help: 'Time from new input to published snapshot',
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
        registers: [this.registry],
      }),
      resources: new Gauge({
        name: 'skein_xds_resources',
        help: 'Resources in the published snapshot, per node group',
        labelNames: ['group'],
        registers: [this.registry],
      }),
      diagnostics: new Gauge({
        name: 'skein_config_diagnostics',
        help: 'Problems found in the input, by severity',
        labelNames: ['severity'],
        registers: [this.registry],
      }),
    };
  }

  readonly #clock: () => Date;

  /** The statuses of the last published build, with stable transition times. */
  get statuses(): readonly ObjectStatus[] {
    return this.#statuses;
  }

  /** The IR of the last published build. */
  get ir(): Ir | undefined {
    return this.#ir;
  }

  get lastBuild(): BuildReport | undefined {
    return this.#lastReport;
  }

  /**
   * Translates a new object set and publishes a snapshot per node group. If anything on the way fails
   * (a translator bug, an inconsistent snapshot), nothing is published and the last good snapshot keeps
   * serving; the failure is logged and reported.
   */
  apply(
    objects: ObjectSet,
    sourceDiagnostics: readonly Diagnostic[] = [],
    /** IR from outside the translators: the node proxy's transparent listeners (src/agentDatapath.ts). */
    extra: { readonly proxy?: Ir } = {},
  ): BuildReport {
    const t0 = performance.now();
    const at = this.#clock().toISOString();
    const errors: string[] = [];
    let published = false;
    let resources = 0;
    let translateMs = 0;
    const encodedBefore = this.#encoder.encodeCount;
    let diagnostics: Diagnostic[] = [...sourceDiagnostics];
    try {
      // 1. Kubernetes objects → IR + status (pure, memoised per object).
      // Unchanged conditions keep the lastTransitionTime they had in the last build's statuses.
      const gateway = this.#gateway.translate(objects, {
        ...(this.#gatewayController === undefined ? {} : { controllerName: this.#gatewayController }),
        transitionTime: at,
        previous: this.#gatewayStatuses,
        reservedSockets: this.#reservedSockets,
      });
      const ingress = this.#ingress.translate(objects, {
        ...this.#ingressConfig,
        reservedSockets: this.#ingressReserved,
        transitionTime: at,
        previous: this.#ingressStatuses,
      });
      // One IR for both: listeners on one socket merge; on a conflict the Gateway API wins (merge.ts).
      // What a Gateway took from an Ingress goes on that Ingress's status; the rest is reported as is.
      // The node proxy's listeners come last; their port is reserved, so nothing competes for it.
      const merged =
        extra.proxy === undefined || extra.proxy.listeners.length === 0
          ? this.#merge(gateway.ir, ingress.ir)
          : this.#merge(gateway.ir, ingress.ir, extra.proxy);
      const ingressReport = ingress.withMergeConflicts(merged.conflicts);
      diagnostics = [
        ...diagnostics,
        ...gateway.diagnostics,
        ...ingressReport.diagnostics,
        ...ingressReport.unmatched.map((c) => ({
          code: c.code,
          severity: 'warning' as const,
          object: c.name,
          message: c.message,
        })),
      ];
      // 2. IR → Envoy resources per node flavor, encoded once per content hash and shared.
      const snapshots = (['envoy', 'grpc'] as const).map((flavor) => {
        const specs = this.#envoy.translate(merged.ir, { flavor });
        return { flavor, snapshot: createSnapshot(specs.map((s) => this.#encoder.encode(s))) };
      });
      translateMs = performance.now() - t0;
      // 3. Check every group's snapshot, then publish all or none: a build never leaves Envoy on the
      // new config and gRPC clients on the old one. Statuses and the IR describe what is published.
      for (const { flavor, snapshot } of snapshots) {
        for (const p of checkConsistency(snapshot))
          errors.push(`${p.code}: ${flavor} snapshot: ${p.message}`);
        resources += sizeOf(snapshot);
      }
      if (errors.length === 0) {
        for (const { flavor, snapshot } of snapshots) {
          // Checked above; setSnapshot checks again on the publish path and refuses nothing here.
          for (const p of this.cache.setSnapshot(flavor, snapshot)) errors.push(`${p.code}: ${p.message}`);
          this.#metrics.resources.set({ group: flavor }, sizeOf(snapshot));
        }
        published = errors.length === 0;
        this.#gatewayStatuses = gateway.statuses;
        this.#ingressStatuses = ingressReport.statuses;
        this.#statuses =
          ingressReport.statuses.length === 0
            ? gateway.statuses
            : [...gateway.statuses, ...ingressReport.statuses];
        this.#ir = merged.ir;
        this.#encoder.sweep();
      }
    } catch (e) {
      // A translator bug must not take the process (or Envoy's config) down with it.
      errors.push(`${BUILD_FAILED}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    const durationMs = performance.now() - t0;
    this.#metrics.builds.inc({ result: published ? 'published' : 'failed' });
    this.#metrics.buildSeconds.observe(durationMs / 1000);
    this.#metrics.diagnostics.set(
      { severity: 'error' },
      diagnostics.filter((d) => d.severity === 'error').length,
    );
    this.#metrics.diagnostics.set(
      { severity: 'warning' },
      diagnostics.filter((d) => d.severity === 'warning').length,
    );
    this.#reportOnce(diagnostics, errors);
    const report: BuildReport = {
      at,
      durationMs,
      translateMs,
      resources,
      encoded: this.#encoder.encodeCount - encodedBefore,
      diagnostics,
      published,
      errors,
    };
    this.#lastReport = report;
    this.#logger.debug({ durationMs, resources, encoded: report.encoded, published }, 'build finished');
    return report;
  }

  /** Logs each distinct diagnostic once while it persists, so a reload loop does not flood the log. */
  #reportOnce(diagnostics: readonly Diagnostic[], errors: readonly string[]): void {
    const now = new Set<string>();
    for (const d of diagnostics) {
      const line = formatDiagnostic(d);
      now.add(line);
      if (this.#reported.has(line)) continue;
      if (d.severity === 'error') this.#logger.error(line);
      else this.#logger.warn(line);
    }
    for (const e of errors) {
      now.add(e);
      if (!this.#reported.has(e)) this.#logger.error(`${e} (the last good config keeps serving)`);
    }
    this.#reported = now;
  }
}

function sizeOf(snapshot: Snapshot): number {
  let n = 0;
  for (const m of snapshot.resources.values()) n += m.size;
  return n;
}
