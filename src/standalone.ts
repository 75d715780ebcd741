import { rm, writeFile } from 'node:fs/promises';
import { createServer, isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ControlPlane } from './controlPlane.js';
import { type EchoServer, startEchoServer } from './echo/echoServer.js';
import { ensureDirectory } from './ensureDirectory.js';
import { getReady } from './envoy/admin.js';
import { renderBootstrap } from './envoy/bootstrap.js';
import { findEnvoy } from './envoy/findEnvoy.js';
import { type EnvoyLogLevel, EnvoySupervisor } from './envoy/supervisor.js';
import type { IngressConfig } from './ingress/translate.js';
import type { Logger } from './log.js';
import { watchDirectory } from './sources/file/watchDirectory.js';
import { type StatusServer, startStatusServer } from './status/statusServer.js';
import { XdsError, XdsErrorCode } from './xds/errors.js';
import { createXdsServer, type XdsServer } from './xds/server.js';
import type { XdsStatus } from './xds/status.js';

/** Everything `skein up` runs, built from explicit options so tests can run it in-process. */
export interface StandaloneOptions {
  readonly configDir: string;
  readonly logger: Logger;
  /** Where the xDS server listens: a Unix socket path (default) or host:port for TCP. */
  readonly xds: { readonly socketPath: string } | { readonly host: string; readonly port: number };
  /** Envoy's admin port on 127.0.0.1 (0 picks a free one). */
  readonly adminPort: number;
  /** Skein's own status/metrics port on 127.0.0.1 (0 picks a free one). */
  readonly statusPort: number;
  /** Use incremental (delta) ADS between Envoy and Skein; otherwise state-of-the-world. */
  readonly delta: boolean;
  /** Start and supervise Envoy (false: control plane only, for an Envoy run elsewhere). */
  readonly envoy: boolean;
  readonly nodeId: string;
  readonly nodeCluster: string;
  /** A directory for runtime files (bootstrap). */
  readonly runDir: string;
  /** Echo backends to run alongside (the quickstart's blue and green). */
  readonly echo?: readonly { name: string; host: string; port: number }[];
  /** Envoy drain time on shutdown. */
  readonly drainTimeoutMs?: number;
  /** Envoy's own log level (its access log is printed whatever the level). Default warning. */
  readonly envoyLogLevel?: EnvoyLogLevel;
  /** Ingress settings (controller name, default address and ports, load balancer mode); see docs/ingress.md. */
  readonly ingress?: IngressConfig;
}

export interface Standalone {
  readonly controlPlane: ControlPlane;
  readonly xds: XdsServer;
  readonly xdsAddress: string;
  readonly envoy: EnvoySupervisor | undefined;
  readonly status: StatusServer;
  /** Resolves after the first snapshot is published. */
  readonly firstBuild: Promise<void>;
  statusReport(): Promise<StandaloneStatus>;
  stop(): Promise<void>;
}

export interface StandaloneStatus {
  readonly configDir: string;
  readonly xdsAddress: string;
  readonly lastBuild: unknown;
  readonly xds: XdsStatus;
  readonly envoy:
    | { readonly supervised: false }
    | {
        readonly supervised: true;
        readonly pid: number | undefined;
        readonly adminUrl: string | undefined;
        readonly version: string | undefined;
        readonly restarts: number;
        readonly ready: string;
      };
}

export type StandaloneErrorCode =
  /** The run directory (or the xDS socket's directory) cannot be made: a file in the way, a read-only place. */
  | 'SKEIN_RUN_DIR_UNUSABLE'
  /** Envoy's admin port is taken on 127.0.0.1 (another Envoy, another `skein up`). */
  | 'SKEIN_ADMIN_PORT_IN_USE'
  /** Skein's status server cannot listen on its port (another process has it). */
  | 'SKEIN_STATUS_LISTEN_FAILED'
  /** An echo backend (`--echo`) cannot listen on its address. */
  | 'SKEIN_ECHO_LISTEN_FAILED';

/** A start-up failure of `skein up` that the operator can fix: one line, with its code. */
export class StandaloneError extends Error {
  override readonly name = 'StandaloneError';
  constructor(
    readonly code: StandaloneErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function defaultRunDir(): string {
  return path.join(os.tmpdir(), `skein-${process.getuid?.() ?? 'user'}`);
}

export async function startStandalone(opts: StandaloneOptions): Promise<Standalone> {
  const { logger } = opts;
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async (): Promise<void> => {
    // Reverse order of start: Envoy drains first, while the xDS server still answers it.
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
    // Everything that can be checked before anything starts is checked first: the run directory, the
    // socket's directory, the Envoy binary and its bootstrap.
    const runDirProblem = await ensureDirectory(opts.runDir);
    if (runDirProblem !== undefined)
      throw new StandaloneError(
        'SKEIN_RUN_DIR_UNUSABLE',
        `Cannot use ${opts.runDir} as the run directory: ${runDirProblem}`,
      );
    const listenOn =
      'socketPath' in opts.xds
        ? `unix://${path.resolve(opts.xds.socketPath)}`
        : `${isIP(opts.xds.host) === 6 ? `[${opts.xds.host}]` : opts.xds.host}:${opts.xds.port}`;
    if ('socketPath' in opts.xds) {
      const problem = await ensureDirectory(path.dirname(path.resolve(opts.xds.socketPath)));
      if (problem !== undefined)
        throw new XdsError(XdsErrorCode.ListenFailed, `Cannot listen on ${listenOn}: ${problem}`);
    }
    // Ports picked at start (0) are free by definition; the others are checked now so that a taken one
    // is one clear line, not Envoy's start-up failure after everything else started.
    if (opts.envoy && opts.adminPort !== 0) {
      const why = await bindProblem(opts.adminPort);
      if (why !== undefined)
        throw new StandaloneError(
          'SKEIN_ADMIN_PORT_IN_USE',
          `Cannot give Envoy's admin interface 127.0.0.1:${opts.adminPort}: ${why}; stop what holds it or choose another --admin-port`,
        );
    }
    if (opts.statusPort !== 0) {
      const why = await bindProblem(opts.statusPort);
      if (why !== undefined)
        throw new StandaloneError(
          'SKEIN_STATUS_LISTEN_FAILED',
          `Cannot start Skein's status server on 127.0.0.1:${opts.statusPort}: ${why}; stop what holds it or choose another --status-port`,
        );
    }
    let envoyBinary: Awaited<ReturnType<typeof findEnvoy>> | undefined;
    let bootstrap: ReturnType<typeof renderBootstrap> | undefined;
    if (opts.envoy) {
      envoyBinary = await findEnvoy();
      bootstrap = renderBootstrap({
        nodeId: opts.nodeId,
        nodeCluster: opts.nodeCluster,
        xds: opts.xds,
        adminPort: opts.adminPort,
        delta: opts.delta,
      });
    }

    const echo: EchoServer[] = [];
    stops.push(async () => {
      await Promise.all(echo.map((s) => s.close()));
    });
    for (const e of opts.echo ?? []) {
      const s = await startEchoServer(e).catch((err: unknown) => {
        throw new StandaloneError(
          'SKEIN_ECHO_LISTEN_FAILED',
          `Cannot start echo backend ${e.name} on ${e.host}:${e.port}: ${errorText(err)}`,
          { cause: err },
        );
      });
      echo.push(s);
      logger.info(`echo backend ${s.name} listening on ${s.host}:${s.port}`);
    }

    // Envoy's admin interface and Skein's status server listen on 127.0.0.1; a Gateway listener on the
    // same port there (or on 0.0.0.0) could not bind. Ports picked at start (0) are not known yet.
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

    // The xDS server starts before the first build so Envoy can connect at once; it holds the stream
    // until a snapshot exists.
    const xds = createXdsServer({ cache: controlPlane.cache, logger, registry: controlPlane.registry });
    const xdsAddress = await xds.listen(listenOn).catch((err: unknown) => {
      throw err instanceof XdsError
        ? err
        : new XdsError(XdsErrorCode.ListenFailed, `Cannot listen on ${listenOn}: ${errorText(err)}`, {
            cause: err,
          });
    });
    stops.push(() => xds.close());
    logger.info(`xDS server listening on ${xdsAddress}`);

    let resolveFirst: () => void = () => {};
    const firstBuild = new Promise<void>((resolve) => {
      resolveFirst = resolve;
    });
    const watcher = await watchDirectory(opts.configDir, {
      logger,
      onChange: (result) => {
        const report = controlPlane.apply(result.objects, result.diagnostics);
        if (report.published) {
          logger.info(
            `config from ${opts.configDir} published: ${report.resources} resources, ${report.encoded} encoded, in ${report.durationMs.toFixed(1)} ms`,
          );
          resolveFirst();
        }
      },
    });
    stops.push(() => watcher.close());

    let envoy: EnvoySupervisor | undefined;
    if (envoyBinary !== undefined && bootstrap !== undefined) {
      const found = envoyBinary;
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

    const statusReport = async (): Promise<StandaloneStatus> => {
      let envoyStatus: StandaloneStatus['envoy'] = { supervised: false };
      if (envoy !== undefined) {
        const adminUrl = envoy.adminUrl;
        let ready = 'unknown';
        if (adminUrl !== undefined) {
          try {
            ready = await getReady(adminUrl);
          } catch (e) {
            ready = `unreachable (${e instanceof Error ? e.message : String(e)})`;
          }
        }
        envoyStatus = {
          supervised: true,
          pid: envoy.pid,
          adminUrl,
          version: envoy.version,
          restarts: envoy.restarts,
          ready,
        };
      }
      return {
        configDir: opts.configDir,
        xdsAddress,
        lastBuild: controlPlane.lastBuild,
        xds: xds.status(),
        envoy: envoyStatus,
      };
    };

    let published = false;
    void firstBuild.then(() => {
      published = true;
    });
    const status = await startStatusServer(
      {
        registry: controlPlane.registry,
        status: statusReport,
        ready: async () => {
          if (!published) return false;
          if (envoy?.adminUrl === undefined) return envoy === undefined;
          try {
            return (await getReady(envoy.adminUrl)) === 'LIVE';
          } catch {
            return false;
          }
        },
      },
      { port: opts.statusPort },
    ).catch((err: unknown) => {
      throw new StandaloneError(
        'SKEIN_STATUS_LISTEN_FAILED',
        `Cannot start Skein's status server on 127.0.0.1:${opts.statusPort}: ${errorText(err)}; choose another --status-port`,
        { cause: err },
      );
    });
    stops.push(() => status.close());
    logger.info(`status and metrics on ${status.url} (/status, /metrics); 'skein status' reads it`);

    return {
      controlPlane,
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

/** Why 127.0.0.1:port cannot be bound now (EADDRINUSE: "it is in use"), or undefined when it can. */
function bindProblem(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (e: NodeJS.ErrnoException) => {
      resolve(e.code === 'EADDRINUSE' ? 'another process listens on it' : e.message);
    });
    probe.listen({ host: '127.0.0.1', port, exclusive: true }, () => {
      probe.close(() => resolve(undefined));
    });
  });
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
