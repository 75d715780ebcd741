import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { type EnvoyBootstrap, renderBootstrap } from '../../src/envoy/bootstrap.js';
import { type FoundEnvoy, findEnvoy } from '../../src/envoy/findEnvoy.js';
import { EnvoySupervisor, type EnvoySupervisorOptions } from '../../src/envoy/supervisor.js';
import type { Logger } from '../../src/log.js';

/** scripts/setup.mjs, which installs Envoy into the user cache (or accepts ENVOY_BIN). */
export const SETUP_SCRIPT = fileURLToPath(new URL('../../scripts/setup.mjs', import.meta.url));

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs scripts/setup.mjs as a child process (bounded to 5 minutes: the first run downloads Envoy). */
export function runSetup(
  args: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [SETUP_SCRIPT, ...args], { env, timeout: 300_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

let ensured: Promise<FoundEnvoy> | undefined;

/**
 * Makes sure Envoy is installed (runs setup once per test worker; a no-op taking ~0.1 s when it is) and
 * returns it. Call from beforeAll.
 */
export function ensureEnvoy(): Promise<FoundEnvoy> {
  // Only the Envoy step: the others (Kubernetes binaries, the eBPF build) have their own tests, and two
  // workers building the addon at once would race in native/build/.
  ensured ??= runSetup(['envoy']).then((r) => {
    if (r.code !== 0) throw new Error(`scripts/setup.mjs failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return findEnvoy();
  });
  return ensured;
}

/** A temporary directory, removed by remove(). */
export async function tempDir(prefix = 'skein-test-'): Promise<{ path: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { path: dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs `envoy --mode validate` on a bootstrap; ok when Envoy accepts it. */
export async function validateBootstrap(
  envoyPath: string,
  bootstrap: EnvoyBootstrap,
): Promise<{ ok: boolean; output: string }> {
  const dir = await tempDir('skein-validate-');
  try {
    const file = path.join(dir.path, 'bootstrap.json');
    await writeFile(file, JSON.stringify(bootstrap));
    return await new Promise((resolve) => {
      execFile(
        envoyPath,
        ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'warning'],
        { timeout: 30_000 },
        (err, stdout, stderr) => resolve({ ok: err === null, output: `${stdout}${stderr}` }),
      );
    });
  } finally {
    await dir.remove();
  }
}

/** One captured pino record. */
export type LogRecord = Record<string, unknown> & { level: number; msg?: string };

/** A pino logger that keeps every record in memory, for asserting on what was logged. */
export function captureLogger(level: pino.LevelWithSilent = 'debug'): {
  logger: Logger;
  records: LogRecord[];
} {
  const records: LogRecord[] = [];
  const logger = pino(
    { level, base: null },
    {
      write(line: string) {
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  );
  return { logger, records };
}

export interface TestEnvoy {
  readonly supervisor: EnvoySupervisor;
  readonly records: LogRecord[];
  readonly dir: string;
  readonly bootstrap: EnvoyBootstrap;
  /** Stops Envoy (if still running) and removes the directory. */
  close(): Promise<void>;
}

export interface TestEnvoyOptions {
  /** Changes the rendered bootstrap before it is written (add static listeners …). */
  readonly edit?: (b: EnvoyBootstrap) => void;
  /** Default 500 ms, so Envoy turns LIVE soon without an xDS server. */
  readonly initialFetchTimeoutMs?: number;
  readonly supervisor?: Partial<Omit<EnvoySupervisorOptions, 'envoyPath' | 'bootstrapPath' | 'logger'>>;
}

/**
 * A supervised Envoy, not yet started, whose ADS points at a Unix socket in a temp dir that nobody serves,
 * with admin on 127.0.0.1 port 0 and one worker thread.
 */
export async function createTestEnvoy(opts: TestEnvoyOptions = {}): Promise<TestEnvoy> {
  const envoy = await ensureEnvoy();
  const dir = await tempDir('skein-envoy-');
  const { logger, records } = captureLogger();
  const bootstrap = renderBootstrap({
    nodeId: `test-${process.pid}`,
    nodeCluster: 'skein-test',
    xds: { socketPath: path.join(dir.path, 'xds.sock') },
    adminPort: 0,
    delta: false,
    initialFetchTimeoutMs: opts.initialFetchTimeoutMs ?? 500,
  });
  opts.edit?.(bootstrap);
  const bootstrapPath = path.join(dir.path, 'bootstrap.json');
  await writeFile(bootstrapPath, JSON.stringify(bootstrap, null, 2));
  const supervisor = new EnvoySupervisor({
    envoyPath: envoy.path,
    bootstrapPath,
    logger,
    runDir: dir.path,
    concurrency: 1,
    drainTimeoutMs: 500,
    killGraceMs: 3000,
    ...opts.supervisor,
  });
  const close = async (): Promise<void> => {
    await supervisor.stop();
    await dir.remove();
  };
  return { supervisor, records, dir: dir.path, bootstrap, close };
}

/** createTestEnvoy, then start(); on failure it cleans up before rethrowing. */
export async function startTestEnvoy(opts: TestEnvoyOptions = {}): Promise<TestEnvoy> {
  const e = await createTestEnvoy(opts);
  try {
    await e.supervisor.start();
  } catch (err) {
    await e.close();
    throw err;
  }
  return e;
}

export interface StaticRoute {
  /** Path prefix to match. */
  readonly prefix: string;
  /** Cluster name (unique per route). */
  readonly cluster: string;
  readonly host: string;
  readonly port: number;
  /** Speak HTTP/2 (h2c) to the upstream. */
  readonly h2c?: boolean;
}

/**
 * Adds to a bootstrap one static HTTP listener on `host` (port 0) that routes by prefix to static
 * clusters, with a JSON access log on stdout (`path`, `code`, `upstream`). For tests that need traffic
 * through Envoy without an xDS server.
 */
export function addStaticProxy(b: EnvoyBootstrap, host: string, routes: readonly StaticRoute[]): void {
  const statics = b['static_resources'] as { clusters: unknown[]; listeners?: unknown[] };
  for (const r of routes) {
    statics.clusters.push({
      name: r.cluster,
      type: 'STATIC',
      connect_timeout: '1s',
      ...(r.h2c === true
        ? {
            typed_extension_protocol_options: {
              'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
                '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
                explicit_http_config: { http2_protocol_options: {} },
              },
            },
          }
        : {}),
      load_assignment: {
        cluster_name: r.cluster,
        endpoints: [
          {
            lb_endpoints: [
              { endpoint: { address: { socket_address: { address: r.host, port_value: r.port } } } },
            ],
          },
        ],
      },
    });
  }
  statics.listeners = [
    ...(statics.listeners ?? []),
    {
      name: 'test_http',
      address: { socket_address: { address: host, port_value: 0 } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type':
                  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: 'test_http',
                access_log: [
                  {
                    name: 'envoy.access_loggers.stdout',
                    typed_config: {
                      '@type':
                        'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
                      log_format: {
                        json_format: {
                          path: '%REQ(:PATH)%',
                          code: '%RESPONSE_CODE%',
                          upstream: '%UPSTREAM_CLUSTER%',
                        },
                      },
                    },
                  },
                ],
                http_filters: [
                  {
                    name: 'envoy.filters.http.router',
                    typed_config: {
                      '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                    },
                  },
                ],
                route_config: {
                  virtual_hosts: [
                    {
                      name: 'all',
                      domains: ['*'],
                      routes: routes.map((r) => ({
                        match: { prefix: r.prefix },
                        route: { cluster: r.cluster },
                      })),
                    },
                  ],
                },
              },
            },
          ],
        },
      ],
    },
  ];
}

/** The address the static test listener bound (its port was 0), from admin /listeners. */
export async function testListenerAddress(adminUrl: string): Promise<{ host: string; port: number }> {
  const res = await fetch(`${adminUrl}/listeners?format=json`, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as {
    listener_statuses?: {
      name: string;
      local_address?: { socket_address?: { address: string; port_value: number } };
    }[];
  };
  const sa = body.listener_statuses?.find((l) => l.name === 'test_http')?.local_address?.socket_address;
  if (sa === undefined) throw new Error(`no test_http listener in ${JSON.stringify(body)}`);
  return { host: sa.address, port: sa.port_value };
}

/** The dynamic base id Envoy logged at start-up ("[envoy] initializing epoch 0 (base id=N, …)"), per pid. */
export function baseIdsFromLogs(records: readonly LogRecord[]): Map<number, string> {
  const ids = new Map<number, string>();
  for (const r of records) {
    const m = /^\[envoy\] initializing epoch 0 \(base id=(\d+),/.exec(r.msg ?? '');
    if (m?.[1] !== undefined && typeof r['pid'] === 'number') ids.set(r['pid'], m[1]);
  }
  return ids;
}

/** True while a process with this pid exists. Signal 0 checks without signalling. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
