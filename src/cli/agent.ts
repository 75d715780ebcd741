import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAgent } from '../agent.js';
import type { EnvoyLogLevel } from '../envoy/supervisor.js';
import type { IngressConfig } from '../ingress/translate.js';
import { createLogger } from '../log.js';
import { KubeClient } from '../sources/kubernetes/kubeClient.js';
import { errorMessage } from '../sources/kubernetes/kubeCodes.js';
import { loadKubeConfig } from '../sources/kubernetes/loadKubeConfig.js';
import { defaultRunDir } from '../standalone.js';
import { FlagError, INGRESS_FLAGS, INGRESS_FLAGS_HELP, ingressConfigFromFlags, portFlag } from './flags.js';
import { nameFlag, untilSignal } from './kubeFlags.js';

const HELP = `Usage: skein agent --node-name NAME [--kubeconfig PATH] [options]

Runs the per-node agent: reads Gateway API objects, Ingresses, Services and EndpointSlices from the
API server, translates them and serves the node's Envoy over xDS on a Unix socket. It writes nothing
to the API server ('skein operator' writes status). See docs/kubernetes.md.

Options:
  --node-name NAME       the Node this agent serves (required)
  --kubeconfig PATH      kubeconfig (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)
  --namespace NS         read namespaced objects of NS only (default: all namespaces)
  --xds-socket PATH      Unix socket for the node's Envoy (default: <tmp>/skein-<uid>/xds.sock)
  --no-envoy             do not start Envoy (it runs elsewhere, e.g. the chart's Envoy container)
  --bootstrap-out PATH   write the Envoy bootstrap for an Envoy started elsewhere to PATH
  --admin-port N         Envoy admin port on 127.0.0.1 (default: 9901)
  --status-address IP    address of /healthz, /readyz, /status, /metrics (default: 127.0.0.1)
  --status-port N        their port (default: 9902)
  --node-id ID           Envoy node id (default: skein-<node-name>)
  --sotw                 state-of-the-world ADS instead of incremental (delta) ADS
  --envoy-log-level L    the supervised Envoy's log level: trace|debug|info|warning|error (default: warning)

${INGRESS_FLAGS_HELP}
Give the agents and the operator the same Ingress flags: both translate, and the operator's status
must describe what the agents serve.
`;

const ENVOY_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;

interface AgentFlags {
  readonly nodeName: string;
  readonly namespace: string | undefined;
  readonly adminPort: number;
  readonly statusPort: number;
  readonly envoyLogLevel: EnvoyLogLevel;
  readonly ingress: IngressConfig;
}

/** Every flag value checked before anything starts; throws FlagError naming the flag. */
function checkFlags(values: Record<string, string | boolean | undefined>): AgentFlags {
  const nodeName = values['node-name'];
  if (typeof nodeName !== 'string' || nodeName === '') {
    throw new FlagError('Cannot start without --node-name: it names the Node this agent serves');
  }
  const level = String(values['envoy-log-level']);
  if (!(ENVOY_LOG_LEVELS as readonly string[]).includes(level)) {
    throw new FlagError(`Cannot use --envoy-log-level "${level}": it takes ${ENVOY_LOG_LEVELS.join('|')}`);
  }
  const statusAddress = String(values['status-address']);
  if (isIP(statusAddress) === 0) {
    throw new FlagError(`Cannot use --status-address "${statusAddress}": it must be an IP address`);
  }
  const ns = values['namespace'];
  return {
    nodeName,
    namespace: typeof ns === 'string' ? nameFlag('--namespace', ns) : undefined,
    adminPort: portFlag('--admin-port', String(values['admin-port']), true),
    statusPort: portFlag('--status-port', String(values['status-port']), true),
    envoyLogLevel: level as EnvoyLogLevel,
    ingress: ingressConfigFromFlags(values as Parameters<typeof ingressConfigFromFlags>[0]),
  };
}

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
      ...INGRESS_FLAGS,
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  let flags: AgentFlags;
  let client: KubeClient;
  try {
    flags = checkFlags(values);
    client = new KubeClient(loadKubeConfig(values.kubeconfig));
  } catch (e) {
    process.stderr.write(`skein agent: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    return 2;
  }
  const logger = createLogger();
  const runDir = defaultRunDir();
  let agent: Awaited<ReturnType<typeof startAgent>>;
  try {
    agent = await startAgent({
      api: client,
      nodeName: flags.nodeName,
      ...(flags.namespace === undefined ? {} : { namespace: flags.namespace }),
      logger,
      xdsSocketPath: path.resolve(values['xds-socket'] ?? path.join(runDir, 'xds.sock')),
      adminPort: flags.adminPort,
      statusAddress: values['status-address'],
      statusPort: flags.statusPort,
      delta: values.sotw !== true,
      envoy: values['no-envoy'] !== true,
      ...(values['bootstrap-out'] === undefined
        ? {}
        : { bootstrapOut: path.resolve(values['bootstrap-out']) }),
      nodeId: values['node-id'] ?? `skein-${flags.nodeName}`,
      nodeCluster: 'skein',
      runDir,
      envoyLogLevel: flags.envoyLogLevel,
      ingress: flags.ingress,
    });
  } catch (e) {
    // Start-up failures (a socket or port in use, no Envoy) are one line with their code, not a stack.
    process.stderr.write(`skein agent: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    client.close();
    return 1;
  }
  logger.info(`skein agent for node ${flags.nodeName} is running against ${client.server}`);
  const signal = await untilSignal();
  logger.info(`${signal}: stopping`);
  await agent.stop();
  client.close();
  return 0;
}
