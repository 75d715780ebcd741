import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAgent } from '../agent.js';
import type { EnvoyLogLevel } from '../envoy/supervisor.js';
import { createLogger } from '../log.js';
import { KubeClient } from '../sources/kubernetes/kubeClient.js';
import { errorMessage } from '../sources/kubernetes/kubeCodes.js';
import { loadKubeConfig } from '../sources/kubernetes/loadKubeConfig.js';
import { defaultRunDir } from '../standalone.js';
import { parsePortFlag, untilSignal } from './kubeFlags.js';

const HELP = `Usage: skein agent --node-name NAME [--kubeconfig PATH] [options]

Runs the per-node agent: reads Gateway API objects, Ingresses, Services and EndpointSlices from the
API server, translates them and serves the node's Envoy over xDS on a Unix socket. It writes nothing
to the API server ('skein operator' writes status). See docs/kubernetes.md.

Options:
  --node-name NAME       the Node this agent serves (required)
  --namespace NS         read namespaced objects of NS only (default: all namespaces)
  --kubeconfig PATH      kubeconfig (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)
  --xds-socket PATH      Unix socket for the node's Envoy (default: <tmp>/skein-<uid>/xds.sock)
  --no-envoy             do not start Envoy (it runs elsewhere, e.g. the chart's Envoy container)
  --bootstrap-out PATH   write the Envoy bootstrap for an Envoy started elsewhere to PATH
  --admin-port N         Envoy admin port on 127.0.0.1 (default: 9901)
  --status-address HOST  address of /healthz, /readyz, /status, /metrics (default: 127.0.0.1)
  --status-port N        their port (default: 9902)
  --node-id ID           Envoy node id (default: skein-<node-name>)
  --sotw                 state-of-the-world ADS instead of incremental (delta) ADS
  --envoy-log-level L    the supervised Envoy's log level: trace|debug|info|warning|error (default: warning)
`;

const ENVOY_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;

/** `skein agent`. Exit codes as main.ts: 0 after a clean stop, 1 when it cannot start, 2 for bad usage. */
export async function runAgent(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'node-name': { type: 'string' },
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'xds-socket': { type: 'string' },
      'no-envoy': { type: 'boolean', default: false },
      'bootstrap-out': { type: 'string' },
      'admin-port': { type: 'string', default: '9901' },
      'status-address': { type: 'string', default: '127.0.0.1' },
      'status-port': { type: 'string', default: '9902' },
      'node-id': { type: 'string' },
      sotw: { type: 'boolean', default: false },
      'envoy-log-level': { type: 'string', default: 'warning' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const nodeName = values['node-name'];
  if (nodeName === undefined || nodeName === '') {
    process.stderr.write(`skein agent: --node-name is required (the Node this agent serves)\n\n${HELP}`);
    return 2;
  }
  const level = values['envoy-log-level'];
  if (!(ENVOY_LOG_LEVELS as readonly string[]).includes(level)) {
    process.stderr.write(
      `skein agent: --envoy-log-level takes ${ENVOY_LOG_LEVELS.join('|')}, got "${level}"\n`,
    );
    return 2;
  }
  const adminPort = parsePortFlag('agent', '--admin-port', values['admin-port']);
  const statusPort = parsePortFlag('agent', '--status-port', values['status-port']);
  if (adminPort === undefined || statusPort === undefined) return 2;

  let client: KubeClient;
  try {
    client = new KubeClient(loadKubeConfig(values.kubeconfig));
  } catch (e) {
    process.stderr.write(`skein agent: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    return 2;
  }
  const logger = createLogger();
  const runDir = defaultRunDir();
  const agent = await startAgent({
    api: client,
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    nodeName,
    logger,
    xdsSocketPath: path.resolve(values['xds-socket'] ?? path.join(runDir, 'xds.sock')),
    adminPort,
    statusAddress: values['status-address'],
    statusPort,
    delta: values.sotw !== true,
    envoy: values['no-envoy'] !== true,
    ...(values['bootstrap-out'] === undefined ? {} : { bootstrapOut: path.resolve(values['bootstrap-out']) }),
    nodeId: values['node-id'] ?? `skein-${nodeName}`,
    nodeCluster: 'skein',
    runDir,
    envoyLogLevel: level as EnvoyLogLevel,
  });
  logger.info(`skein agent for node ${nodeName} is running against ${client.server}`);
  const signal = await untilSignal();
  logger.info(`${signal}: stopping`);
  await agent.stop();
  client.close();
  return 0;
}
