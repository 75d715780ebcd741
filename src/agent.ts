import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ControlPlane } from './controlPlane.js';
import { getReady } from './envoy/admin.js';
import { renderBootstrap } from './envoy/bootstrap.js';
import { findEnvoy } from './envoy/findEnvoy.js';
import { type EnvoyLogLevel, EnvoySupervisor } from './envoy/supervisor.js';
import type { IngressConfig } from './ingress/translate.js';
import type { Logger } from './log.js';
import type { BackoffOptions } from './sources/kubernetes/backoff.js';
import type { KubeApi } from './sources/kubernetes/kubeClient.js';
import { KubeMetrics } from './sources/kubernetes/kubeMetrics.js';
import { KubeSource, type KubeSourceStatus } from './sources/kubernetes/kubeSource.js';
import { type StatusServer, startStatusServer } from './status/statusServer.js';
import { createXdsServer, type XdsServer } from './xds/server.js';
import type { XdsStatus } from './xds/status.js';

/** Everything `skein agent` runs, from explicit options (tests run it in-process). */
export interface AgentOptions {
  readonly api: KubeApi;
  /** The Node this agent serves. */
  readonly nodeName: string;
  /** Read namespaced objects of this namespace only (see KubeSourceOptions.namespace). */
  readonly namespace?: string;
  readonly logger: Logger;
  /** The Unix socket the node's Envoy connects to. */
  readonly xdsSocketPath: string;
  /** Envoy's admin port on 127.0.0.1 (0 picks a free one; not with bootstrapOut). */
  readonly adminPort: number;
  readonly statusAddress?: string;
  /** Skein's /healthz, /readyz, /status and /metrics (0 picks a free port). */
  readonly statusPort: number;
  readonly delta: boolean;
  /** Start and supervise Envoy; false when Envoy runs elsewhere (the chart's Envoy container). */
  readonly envoy: boolean;
  /** Write the Envoy bootstrap here (for an Envoy started elsewhere). */
  readonly bootstrapOut?: string;
  readonly nodeId: string;
  readonly nodeCluster: string;
  /** Runtime files (the supervised Envoy's bootstrap). */
  readonly runDir: string;
  readonly drainTimeoutMs?: number;
  readonly envoyLogLevel?: EnvoyLogLevel;
  readonly ingress?: IngressConfig;
  /** Coalescing (defaults in kubeSource.ts) and watch retry backoff; tests shorten them. */
  readonly holdOffMs?: number;
  readonly maxDelayMs?: number;
  readonly backoff?: BackoffOptions;
}

export interface Agent {
  readonly controlPlane: ControlPlane;
  readonly source: KubeSource;
  readonly xds: XdsServer;
  readonly xdsAddress: string;
  readonly envoy: EnvoySupervisor | undefined;
  readonly status: StatusServer;
  /** Resolves after the first snapshot is published (every informer synced first). */
  readonly firstBuild: Promise<void>;
  statusReport(): Promise<AgentStatus>;
  stop(): Promise<void>;
}

export interface AgentStatus {
  readonly nodeName: string;
  readonly server: string;
  readonly xdsAddress: string;
  readonly kubernetes: KubeSourceStatus;
  readonly lastBuild: unknown;
  readonly xds: XdsStatus;
  readonly envoy:
    | { readonly supervised: false }
    | {
        readonly supervised: true;
        readonly pid: number | undefined;
        readonly adminUrl: string | undefined;
        readonly restarts: number;
        readonly ready: string;
      };
}

/**
 * The per-node agent: Kubernetes informers → the same ControlPlane `skein up` uses → xDS over a Unix
 * socket to the node's Envoy, which it supervises unless told Envoy runs elsewhere. It writes nothing
 * to the API server (the operator writes status).
 */
export async function startAgent(opts: AgentOptions): Promise<Agent> {
  const { logger } = opts;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    // Reverse order: Envoy drains while xDS still answers; the informers stop last.
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (e) {
        logger.warn({ err: e }, 'error while stopping');
      }
    }
    stops.length = 0;
  };
  try {
    await mkdir(opts.runDir, { recursive: true });
    const reservedSockets = [
      { port: opts.adminPort, holder: "Envoy's admin interface" },
      { port: opts.statusPort, holder: "Skein's status server" },
    ]
      .filter((r) => r.port !== 0)
      .map((r) => ({ address: '127.0.0.1', ...r }));
    const controlPlane = new ControlPlane({
      logger,
      reservedSockets,
      ...(opts.ingress === undefined ? {} : { ingress: opts.ingress }),
    });
    const metrics = new KubeMetrics(controlPlane.registry);

    let resolveFirst: () => void = () => {};
    const firstBuild = new Promise<void>((resolve) => {
      resolveFirst = resolve;
    });
    let published = false;
    const source = new KubeSource({
      api: opts.api,
      logger,
      metrics,
      nodeName: opts.nodeName,
      ...(opts.namespace === undefined ? {} : { namespace: opts.namespace }),
      ...(opts.ingress?.controllerName === undefined
        ? {}
        : { controllers: { ingress: opts.ingress.controllerName } }),
      ...(opts.holdOffMs === undefined ? {} : { holdOffMs: opts.holdOffMs }),
      ...(opts.maxDelayMs === undefined ? {} : { maxDelayMs: opts.maxDelayMs }),
      ...(opts.backoff === undefined ? {} : { backoff: opts.backoff }),
      onChange: (objects) => {
        const report = controlPlane.apply(objects);
        if (!report.published) return;
        logger.debug(
          `config published: ${report.resources} resources, ${report.encoded} encoded, in ${report.durationMs.toFixed(1)} ms`,
        );
        if (!published) {
          published = true;
          logger.info(`first config published: ${report.resources} resources`);
          resolveFirst();
        }
      },
    });
    stops.push(() => source.stop());

    // Envoy may connect before the first build; the xDS server holds its stream until a snapshot exists.
    const xds = createXdsServer({ cache: controlPlane.cache, logger, registry: controlPlane.registry });
    const xdsAddress = await xds.listen(`unix://${path.resolve(opts.xdsSocketPath)}`);
    stops.push(() => xds.close());
    logger.info(`xDS server listening on ${xdsAddress}`);

    const bootstrap = renderBootstrap({
      nodeId: opts.nodeId,
      nodeCluster: opts.nodeCluster,
      xds: { socketPath: opts.xdsSocketPath },
      adminPort: opts.adminPort,
      delta: opts.delta,
    });
    if (opts.bootstrapOut !== undefined) {
      await mkdir(path.dirname(opts.bootstrapOut), { recursive: true });
      await writeFile(opts.bootstrapOut, JSON.stringify(bootstrap, null, 2));
      logger.info(`Envoy bootstrap written to ${opts.bootstrapOut}`);
    }
    source.start();

    let envoy: EnvoySupervisor | undefined;
    if (opts.envoy) {
      const found = await findEnvoy();
      logger.info(`using Envoy ${found.version} at ${found.path} (from ${found.source})`);
      const bootstrapPath = path.join(opts.runDir, 'envoy-bootstrap.json');
      await writeFile(bootstrapPath, JSON.stringify(bootstrap, null, 2));
      envoy = new EnvoySupervisor({
        envoyPath: found.path,
        bootstrapPath,
        logger,
        runDir: opts.runDir,
        logLevel: opts.envoyLogLevel ?? 'warning',
        ...(opts.drainTimeoutMs !== undefined ? { drainTimeoutMs: opts.drainTimeoutMs } : {}),
      });
      const supervised = envoy;
      await supervised.start();
      stops.push(async () => {
        await supervised.stop();
        await rm(bootstrapPath, { force: true });
      });
    }

    const envoyReady = async (): Promise<string> => {
      const adminUrl = envoy?.adminUrl;
      if (adminUrl === undefined) return 'unknown';
      try {
        return await getReady(adminUrl);
      } catch (e) {
        return `unreachable (${e instanceof Error ? e.message : String(e)})`;
      }
    };
    const statusReport = async (): Promise<AgentStatus> => ({
      nodeName: opts.nodeName,
      server: opts.api.server,
      xdsAddress,
      kubernetes: source.status(),
      lastBuild: controlPlane.lastBuild,
      xds: xds.status(),
      envoy:
        envoy === undefined
          ? { supervised: false }
          : {
              supervised: true,
              pid: envoy.pid,
              adminUrl: envoy.adminUrl,
              restarts: envoy.restarts,
              ready: await envoyReady(),
            },
    });
    const status = await startStatusServer(
      {
        registry: controlPlane.registry,
        status: statusReport,
        ready: async () => published && (envoy === undefined || (await envoyReady()) === 'LIVE'),
      },
      { host: opts.statusAddress ?? '127.0.0.1', port: opts.statusPort },
    );
    stops.push(() => status.close());
    logger.info(`status and metrics on ${status.url} (/healthz, /readyz, /status, /metrics)`);

    return { controlPlane, source, xds, xdsAddress, envoy, status, firstBuild, statusReport, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
