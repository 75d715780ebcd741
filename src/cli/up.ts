import { stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { EnvoyLogLevel } from '../envoy/supervisor.js';
import { createLogger } from '../log.js';
import { defaultRunDir, startStandalone } from '../standalone.js';
import { parseEchoSpec } from './echo.js';
import { FlagError, INGRESS_FLAGS, INGRESS_FLAGS_HELP, ingressConfigFromFlags, portFlag } from './flags.js';

const HELP = `Usage: skein up [--config-dir DIR] [options]

Runs Skein in standalone mode: watches DIR for Kubernetes YAML (Gateway API objects, Ingresses, Services,
EndpointSlices, Secrets), serves the translated config over xDS and supervises a node-wide Envoy that
uses it. Edits to DIR reach Envoy within a second, without restarting it.

Options:
  --config-dir DIR     directory of Kubernetes YAML (default: .)
  --admin-port N       Envoy admin port, on 127.0.0.1 only (default: 9901; 0 picks a free one)
  --xds-socket PATH    Unix socket for xDS (default: <tmp>/skein-<uid>/xds.sock)
  --xds-address IP:P   serve xDS on TCP instead, on an IP literal (loopback recommended; [::1]:P for IPv6)
  --status-port N      Skein's /status and /metrics on 127.0.0.1 (default: 9902; 0 picks a free one)
  --sotw               state-of-the-world ADS instead of incremental (delta) ADS
  --no-envoy           run only the control plane (point your own Envoy at the xDS socket)
  --node-id ID         Envoy node id (default: skein-<hostname>)
  --echo NAME=H:P      also run an echo backend (repeatable; the quickstart uses two)
  --envoy-log-level L  Envoy's log level: trace|debug|info|warning|error (default: warning;
                       the access log is always printed)

${INGRESS_FLAGS_HELP}
Exit codes: 0 stopped by SIGINT/SIGTERM, 1 a start-up failure (the message carries its SKEIN_* code),
2 bad usage (a missing config directory, a bad flag value).
`;

export async function runUp(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'config-dir': { type: 'string', default: '.' },
      'admin-port': { type: 'string', default: '9901' },
      'xds-socket': { type: 'string' },
      'xds-address': { type: 'string' },
      'status-port': { type: 'string', default: '9902' },
      sotw: { type: 'boolean', default: false },
      'no-envoy': { type: 'boolean', default: false },
      'node-id': { type: 'string' },
      echo: { type: 'string', multiple: true, default: [] },
      'envoy-log-level': { type: 'string', default: 'warning' },
      ...INGRESS_FLAGS,
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  let flags: ReturnType<typeof checkFlags>;
  try {
    flags = checkFlags(values);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`skein up: ${e.code}: ${e.message}\n`);
    return 2;
  }
  const configDir = path.resolve(values['config-dir']);
  // A missing directory is a usage error (exit 2), not something to watch for.
  const st = await stat(configDir).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) {
    process.stderr.write(
      `skein up: SKEIN_SOURCE_NO_DIR: config directory ${configDir} does not exist or is not a directory\n`,
    );
    return 2;
  }

  const logger = createLogger();
  const hostname = (await import('node:os')).hostname();
  const runDir = defaultRunDir();
  const instance = await startStandalone({
    configDir,
    logger,
    xds: flags.xds ?? { socketPath: values['xds-socket'] ?? path.join(runDir, 'xds.sock') },
    adminPort: flags.adminPort,
    statusPort: flags.statusPort,
    delta: values.sotw !== true,
    envoy: values['no-envoy'] !== true,
    nodeId: values['node-id'] ?? `skein-${hostname}`,
    nodeCluster: 'skein',
    runDir,
    echo: flags.echo,
    envoyLogLevel: flags.envoyLogLevel,
    ingress: flags.ingress,
  });
  logger.info('skein is up; press Ctrl-C to stop');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  logger.info('stopping: draining Envoy');
  await instance.stop();
  logger.info('stopped');
  return 0;
}

/** Every flag value checked before anything starts; throws FlagError naming the flag. */
function checkFlags(values: {
  readonly [key: string]: string | boolean | string[] | undefined;
  'admin-port': string;
  'status-port': string;
  'xds-address'?: string | undefined;
  'xds-socket'?: string | undefined;
  'envoy-log-level': string;
  echo: string[];
}) {
  const envoyLogLevel = values['envoy-log-level'];
  if (!isEnvoyLogLevel(envoyLogLevel)) {
    throw new FlagError(
      `Cannot use --envoy-log-level "${envoyLogLevel}": it takes ${ENVOY_LOG_LEVELS.join('|')}`,
    );
  }
  const adminPort = portFlag('--admin-port', values['admin-port'], true);
  const statusPort = portFlag('--status-port', values['status-port'], true);
  if (adminPort !== 0 && adminPort === statusPort) {
    throw new FlagError(
      `Cannot use --status-port ${statusPort}: it is also Envoy's admin port (--admin-port)`,
    );
  }
  const echo = values.echo.map((spec) => {
    const e = parseEchoSpec(spec, undefined);
    if (e === undefined) throw new FlagError(`Cannot use --echo "${spec}": it is not NAME=HOST:PORT`);
    return e;
  });
  const address = values['xds-address'];
  if (address !== undefined && values['xds-socket'] !== undefined) {
    throw new FlagError('Cannot use --xds-address and --xds-socket together: xDS is served on one of them');
  }
  let xds: { host: string; port: number } | undefined;
  if (address !== undefined) {
    // An IP literal: Envoy's bootstrap points a STATIC cluster at it, which takes no names.
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
    const host = m?.[1] ?? m?.[2];
    if (host === undefined || m?.[3] === undefined) {
      throw new FlagError(
        `Cannot use --xds-address "${address}": it is not IP:PORT (e.g. 127.0.0.1:18000 or [::1]:18000)`,
      );
    }
    if (isIP(host) === 0) {
      throw new FlagError(
        `Cannot use --xds-address "${address}": "${host}" is not an IP address; Envoy reaches xDS through a static cluster, which takes an IP literal (e.g. 127.0.0.1), not a host name`,
      );
    }
    xds = { host, port: portFlag('--xds-address', m[3], false) };
  }
  const ingress = ingressConfigFromFlags(values as Parameters<typeof ingressConfigFromFlags>[0]);
  return { envoyLogLevel, adminPort, statusPort, echo, xds, ingress };
}

const ENVOY_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;
function isEnvoyLogLevel(s: string): s is EnvoyLogLevel {
  return (ENVOY_LOG_LEVELS as readonly string[]).includes(s);
}
