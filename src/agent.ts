import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Registry } from 'prom-client';
import type { AgentDatapath, AgentDatapathStatus, DatapathSettings, NodeAddresses } from './agentDatapath.js';
import { ControlPlane } from './controlPlane.js';
import { getReady } from './envoy/admin.js';
import { renderBootstrap } from './envoy/bootstrap.js';
import { findEnvoy } from './envoy/findEnvoy.js';
import { type EnvoyLogLevel, EnvoySupervisor } from './envoy/supervisor.js';
import type { IngressConfig } from './ingress/translate.js';
import type { Logger } from './log.js';
import { emptyIr, type Ir } from './model/ir.js';
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
  /** GatewayClasses with this controllerName are Skein's (default skein.io/gateway-controller). */
  readonly gatewayControllerName?: string;
  /**
   * The eBPF datapath of this node (service load-balancing, policy, L7 redirect). Absent: none, L7 only.
   * When it cannot start (no BPF here, not built, a bad cgroup), the agent says why in one line and
   * serves L7 all the same.
   */
  readonly datapath?: DatapathSettings;
  /** Coalescing (defaults in kubeSource.ts) and watch retry backoff; tests shorten them. */
  readonly holdOffMs?: number;
  readonly maxDelayMs?: number;
  readonly backoff?: BackoffOptions;
}

export interface Agent {
  readonly controlPlane: ControlPlane;
  /** The running datapath; undefined when none was asked for or it could not start. */
  readonly datapath: AgentDatapath | undefined;
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
  readonly datapath: AgentDatapathStatus | { readonly enabled: false; readonly reason: string };
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
    // The datapath first: whether it runs decides whether the proxy port is reserved.
    let datapath: AgentDatapath | undefined;
    let datapathOff = 'not enabled (datapath.enabled: false, or --no-datapath)';
    const registry = new Registry();
    let proxy: Ir = emptyIr;
    let rebuild: () => void = () => {};
    if (opts.datapath !== undefined) {
      try {
        // Imported here only: `skein up` and an agent without a datapath never load its modules.
        const { AgentDatapath } = await import('./agentDatapath.js');
        datapath = await AgentDatapath.start({
          nodeName: opts.nodeName,
          settings: opts.datapath,
          logger,
          registry,
          publishProxy: (ir) => {
            proxy = ir;
            rebuild();
          },
        });
        stops.push(() => datapath?.stop() ?? Promise.resolve());
        logger.info(
          `eBPF datapath on: pins under ${opts.datapath.pinRoot}, service load-balancing ${opts.datapath.serviceLb ? `on (cgroup ${opts.datapath.cgroupRoot})` : 'off'}, L7 proxy ${opts.datapath.l7Proxy ? `on (port ${opts.datapath.proxyPort})` : 'off'}`,
        );
      } catch (e) {
        // One line with the code; L7 (xDS for Envoy) works without the datapath.
        const code = (e as { code?: unknown }).code;
        datapathOff = `${typeof code === 'string' ? code : 'error'}: ${e instanceof Error ? e.message.replace(/^SKEIN_[A-Z0-9_]+: /, '') : String(e)}`;
        logger.warn(`eBPF datapath off, serving L7 only: ${datapathOff}`);
      }
    }
    const reservedSockets = [
      { address: '127.0.0.1', port: opts.adminPort, holder: "Envoy's admin interface" },
      { address: '127.0.0.1', port: opts.statusPort, holder: "Skein's status server" },
      ...(datapath !== undefined && opts.datapath?.l7Proxy === true
        ? [
            {
              address: '0.0.0.0',
              port: opts.datapath.proxyPort,
              holder: "the node proxy's transparent listener",
            },
          ]
        : []),
    ].filter((r) => r.port !== 0);
    const controlPlane = new ControlPlane({
      logger,
      registry,
      reservedSockets,
      ...(opts.ingress === undefined ? {} : { ingress: opts.ingress }),
      ...(opts.gatewayControllerName === undefined
        ? {}
        : { gatewayControllerName: opts.gatewayControllerName }),
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
      controllers: {
        ...(opts.ingress?.controllerName === undefined ? {} : { ingress: opts.ingress.controllerName }),
        ...(opts.gatewayControllerName === undefined ? {} : { gateway: opts.gatewayControllerName }),
      },
      ...(opts.holdOffMs === undefined ? {} : { holdOffMs: opts.holdOffMs }),
      ...(opts.maxDelayMs === undefined ? {} : { maxDelayMs: opts.maxDelayMs }),
      ...(opts.backoff === undefined ? {} : { backoff: opts.backoff }),
      onChange: (objects) => {
        lastObjects = objects;
        build();
        datapath?.update(
          objects,
          source.store.view('Node', undefined, opts.nodeName) as NodeAddresses | undefined,
        );
      },
    });
    let lastObjects: Parameters<ControlPlane['apply']>[0] | undefined;
    const build = (): void => {
      if (lastObjects === undefined) return;
      const report = controlPlane.apply(lastObjects, [], { proxy });
      if (!report.published) return;
      logger.debug(
        `config published: ${report.resources} resources, ${report.encoded} encoded, in ${report.durationMs.toFixed(1)} ms`,
      );
      if (!published) {
        published = true;
        logger.info(`first config published: ${report.resources} resources`);
        resolveFirst();
      }
    };
    rebuild = build;
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
      datapath: datapath?.status() ?? { enabled: false, reason: datapathOff },
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

    return {
      controlPlane,
      datapath,
      source,
      xds,
      xdsAddress,
      envoy,
      status,
      firstBuild,
      statusReport,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
