import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { EnvoyLogLevel } from '../envoy/supervisor.js';
import { createLogger } from '../log.js';
import { defaultRunDir, startStandalone } from '../standalone.js';
import { parseEchoSpec } from './echo.js';

const HELP = `Usage: skein up [--config-dir DIR] [options]

Runs Skein in standalone mode: watches DIR for Kubernetes YAML (Gateway API objects, Services,
EndpointSlices), serves the translated config over xDS and supervises a node-wide Envoy that uses it.
Edits to DIR reach Envoy within a second, without restarting it.

Options:
  --config-dir DIR     directory of Kubernetes YAML (default: .)
  --admin-port N       Envoy admin port, on 127.0.0.1 only (default: 9901)
  --xds-socket PATH    Unix socket for xDS (default: <tmp>/skein-<uid>/xds.sock)
  --xds-address H:P    serve xDS on TCP instead (loopback recommended)
  --status-port N      Skein's /status and /metrics on 127.0.0.1 (default: 9902)
  --sotw               state-of-the-world ADS instead of incremental (delta) ADS
  --no-envoy           run only the control plane (point your own Envoy at the xDS socket)
  --node-id ID         Envoy node id (default: skein-<hostname>)
  --echo NAME=H:P      also run an echo backend (repeatable; the quickstart uses two)
  --envoy-log-level L  Envoy's log level: trace|debug|info|warning|error (default: warning;
                       the access log is always printed)
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
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const logger = createLogger();
  const configDir = path.resolve(values['config-dir']);
  // A missing directory is a usage error (exit 2), not something to watch for.
  const st = await stat(configDir).catch(() => undefined);
  if (st === undefined || !st.isDirectory()) {
    process.stderr.write(
      `skein up: SKEIN_SOURCE_NO_DIR: config directory ${configDir} does not exist or is not a directory\n`,
    );
    return 2;
  }
  const envoyLogLevel = values['envoy-log-level'];
  if (!isEnvoyLogLevel(envoyLogLevel)) {
    process.stderr.write(
      `skein up: --envoy-log-level takes ${ENVOY_LOG_LEVELS.join('|')}, got "${envoyLogLevel}"\n`,
    );
    return 2;
  }
  const adminPort = parsePort(values['admin-port'], '--admin-port', true);
  const statusPort = parsePort(values['status-port'], '--status-port', true);
  if (adminPort === undefined || statusPort === undefined) return 2;
  const echo = [];
  for (const spec of values.echo) {
    const e = parseEchoSpec(spec, undefined);
    if (e === undefined) {
      process.stderr.write(`skein up: --echo "${spec}" is not NAME=HOST:PORT\n`);
      return 2;
    }
    echo.push(e);
  }
  let xds: { socketPath: string } | { host: string; port: number };
  const runDir = defaultRunDir();
  if (values['xds-address'] !== undefined) {
    const m = /^(.+):(\d+)$/.exec(values['xds-address']);
    const port = m?.[2] === undefined ? undefined : parsePort(m[2], '--xds-address', false);
    if (m?.[1] === undefined || port === undefined) {
      process.stderr.write(`skein up: --xds-address "${values['xds-address']}" is not HOST:PORT\n`);
      return 2;
    }
    xds = { host: m[1], port };
  } else {
    xds = { socketPath: values['xds-socket'] ?? path.join(runDir, 'xds.sock') };
  }

  const hostname = (await import('node:os')).hostname();
  const instance = await startStandalone({
    configDir,
    logger,
    xds,
    adminPort,
    statusPort,
    delta: values.sotw !== true,
    envoy: values['no-envoy'] !== true,
    nodeId: values['node-id'] ?? `skein-${hostname}`,
    nodeCluster: 'skein',
    runDir,
    echo,
    envoyLogLevel,
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

const ENVOY_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;
function isEnvoyLogLevel(s: string): s is EnvoyLogLevel {
  return (ENVOY_LOG_LEVELS as readonly string[]).includes(s);
}

function parsePort(value: string, flag: string, allowZero: boolean): number | undefined {
  const n = Number(value);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    process.stderr.write(`skein up: ${flag} must be a port number, got "${value}"\n`);
    return undefined;
  }
  return n;
}
