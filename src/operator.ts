import { ControlPlane } from './controlPlane.js';
import type { IngressConfig } from './ingress/translate.js';
import type { Logger } from './log.js';
import type { BackoffOptions } from './sources/kubernetes/backoff.js';
import type { KubeApi } from './sources/kubernetes/kubeClient.js';
import { KubeMetrics } from './sources/kubernetes/kubeMetrics.js';
import { KubeSource, type KubeSourceStatus } from './sources/kubernetes/kubeSource.js';
import { LeaderElector, type LeaderStatus } from './sources/kubernetes/leaderElector.js';
import { StatusWriter, type StatusWriterStatus } from './sources/kubernetes/statusWriter.js';
import { type StatusServer, startStatusServer } from './status/statusServer.js';

/** Everything `skein operator` runs, from explicit options (tests run it in-process). */
export interface OperatorOptions {
  readonly api: KubeApi;
  readonly logger: Logger;
  /** Read namespaced objects of this namespace only (see KubeSourceOptions.namespace). */
  readonly namespace?: string;
  readonly lease: {
    readonly namespace: string;
    readonly name: string;
    readonly identity: string;
    readonly leaseDurationMs?: number;
    readonly renewDeadlineMs?: number;
    readonly retryPeriodMs?: number;
  };
  readonly statusAddress?: string;
  /** 0 picks a free port. */
  readonly statusPort: number;
  readonly ingress?: IngressConfig;
  /** GatewayClasses with this controllerName are Skein's (default skein.io/gateway-controller). */
  readonly gatewayControllerName?: string;
  /** Per-object status write interval (default 500 ms) and retry backoff; tests shorten them. */
  readonly minWriteIntervalMs?: number;
  readonly writeBackoff?: BackoffOptions;
  readonly watchBackoff?: BackoffOptions;
}

export interface Operator {
  readonly controlPlane: ControlPlane;
  readonly source: KubeSource;
  readonly elector: LeaderElector;
  readonly writer: StatusWriter;
  readonly status: StatusServer;
  /** Resolves after the first translation (every informer synced first). */
  readonly firstBuild: Promise<void>;
  statusReport(): OperatorStatus;
  stop(): Promise<void>;
}

export interface OperatorStatus {
  readonly server: string;
  readonly kubernetes: KubeSourceStatus;
  readonly leader: LeaderStatus;
  readonly statusWriter: StatusWriterStatus;
  readonly lastBuild: unknown;
}

/**
 * The cluster-wide operator: the same informers and translators as every agent, computing the same
 * statuses; the replica holding the Lease writes them. Status has one writer, and it is computed by
 * the code that programs Envoy.
 */
export async function startOperator(opts: OperatorOptions): Promise<Operator> {
  const { logger } = opts;
  const controlPlane = new ControlPlane({
    logger,
    ...(opts.ingress === undefined ? {} : { ingress: opts.ingress }),
    ...(opts.gatewayControllerName === undefined
      ? {}
      : { gatewayControllerName: opts.gatewayControllerName }),
  });
  const metrics = new KubeMetrics(controlPlane.registry);
  let source: KubeSource | undefined;
  const writer = new StatusWriter({
    api: opts.api,
    store: {
      // The source is made below; the writer reads it only after the first build.
      get: (kind, ns, name) => source?.store.get(kind, ns, name),
      list: (kind) => source?.store.list(kind) ?? [],
    },
    logger,
    metrics,
    isLeader: () => elector.isLeader,
    ...(opts.gatewayControllerName === undefined ? {} : { gatewayController: opts.gatewayControllerName }),
    ...(opts.minWriteIntervalMs === undefined ? {} : { minIntervalMs: opts.minWriteIntervalMs }),
    ...(opts.writeBackoff === undefined ? {} : { backoff: opts.writeBackoff }),
  });
  let resolveFirst: () => void = () => {};
  const firstBuild = new Promise<void>((resolve) => {
    resolveFirst = resolve;
  });
  let built = false;
  source = new KubeSource({
    api: opts.api,
    logger,
    metrics,
    ...(opts.namespace === undefined ? {} : { namespace: opts.namespace }),
    controllers: {
      ...(opts.ingress?.controllerName === undefined ? {} : { ingress: opts.ingress.controllerName }),
      ...(opts.gatewayControllerName === undefined ? {} : { gateway: opts.gatewayControllerName }),
    },
    ...(opts.watchBackoff === undefined ? {} : { backoff: opts.watchBackoff }),
    onChange: (objects) => {
      // A build whose translation throws keeps the last statuses (ControlPlane replaces them only when
      // translation succeeds), so nothing is written from a half-done translation.
      controlPlane.apply(objects);
      writer.update(controlPlane.statuses);
      if (!built) {
        built = true;
        resolveFirst();
      }
    },
    onRawChange: (kind, key) => {
      const slash = key.indexOf('/');
      writer.recheck(kind, key.slice(0, slash), key.slice(slash + 1));
    },
  });
  const elector = new LeaderElector({
    api: opts.api,
    ...opts.lease,
    logger,
    metrics,
    onStartedLeading: () => {
      // Until the first build the writer has nothing to compare; it checks everything then.
      writer.setActive(true);
    },
    onStoppedLeading: () => writer.setActive(false),
    onNewLeader: (holder) => {
      if (holder !== opts.lease.identity)
        logger.info(`the leader is ${holder === '' ? 'nobody (the Lease is free)' : holder}`);
    },
  });
  const kube = source;
  const statusReport = (): OperatorStatus => ({
    server: opts.api.server,
    kubernetes: kube.status(),
    leader: elector.status(),
    statusWriter: writer.status(),
    lastBuild: controlPlane.lastBuild,
  });
  let status: StatusServer | undefined;
  try {
    status = await startStatusServer(
      { registry: controlPlane.registry, status: statusReport, ready: () => built },
      { host: opts.statusAddress ?? '127.0.0.1', port: opts.statusPort },
    );
  } catch (e) {
    await kube.stop();
    throw e;
  }
  kube.start();
  elector.start();
  logger.info(`status and metrics on ${status.url} (/healthz, /readyz, /status, /metrics)`);
  const server = status;
  return {
    controlPlane,
    source: kube,
    elector,
    writer,
    status: server,
    firstBuild,
    statusReport,
    async stop() {
      // Stop writing first, then give the Lease up so the other replica takes over at once.
      writer.stop();
      await elector.stop();
      await kube.stop();
      await server.close();
    },
  };
}
