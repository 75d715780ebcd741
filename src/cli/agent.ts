import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startAgent } from '../agent.js';
import type { DatapathSettings } from '../agentDatapath.js';
import type { EnvoyLogLevel } from '../envoy/supervisor.js';
import type { IngressConfig } from '../ingress/translate.js';
import { createLogger } from '../log.js';
import { KubeClient } from '../sources/kubernetes/kubeClient.js';
import { errorMessage } from '../sources/kubernetes/kubeCodes.js';
import { loadKubeConfig } from '../sources/kubernetes/loadKubeConfig.js';
import { defaultRunDir } from '../standalone.js';
import {
  ConfigCode,
  defaultConfig,
  FLOW_EVENT_LEVELS,
  loadConfigFile,
  type SkeinConfig,
} from './configFile.js';
import { FlagError, INGRESS_FLAGS, INGRESS_FLAGS_HELP, ingressConfigFromFlags, portFlag } from './flags.js';
import { booleanFlag, nameFlag, pathFlag, untilSignal } from './kubeFlags.js';

const HELP = `Usage: skein agent --node-name NAME [--kubeconfig PATH] [--config PATH] [options]
       skein agent --cleanup [--config PATH] [--pin-root DIR]

Runs the per-node agent: reads Gateway API objects, Ingresses, Services, EndpointSlices, this node's
Pods and NetworkPolicies from the API server, translates them, serves the node's Envoy over xDS on a
Unix socket and programs the node's eBPF datapath (socket load-balancing of ClusterIPs, L3/L4 policy,
L7 redirects to Envoy). It writes nothing to the API server ('skein operator' writes status). See
docs/kubernetes.md.

Options:
  --config PATH          settings file (the Helm chart's config.yaml); flags override it
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

Datapath (each overrides its setting in --config):
  --no-datapath                 serve L7 only; load no BPF (datapath.enabled: false)
  --kube-proxy-replacement B    true|false: balance Service ClusterIPs at the socket (default: false)
  --l7-proxy B                  true|false: redirect what policy asks for to Envoy (default: true)
  --pin-root DIR                bpffs directory of Skein's pins (default: /sys/fs/bpf/skein)
  --cgroup-root DIR             cgroup v2 directory the socket programs attach to (default: /sys/fs/cgroup)
  --state-dir DIR               where identity numbers are kept across restarts (default: /var/lib/skein)
  --proxy-port N                the node Envoy's transparent listener for redirects (default: 15001)
  --flow-events L               none|drops|flows|packets: flow events of the policy programs (default: flows)
  --cleanup                     remove everything the datapath attached, pinned and routed, print it, exit

${INGRESS_FLAGS_HELP}
Give the agents and the operator the same Ingress flags: both translate, and the operator's status
must describe what the agents serve.
`;

const ENVOY_LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;

interface AgentFlags {
  readonly config: SkeinConfig;
  readonly datapath: DatapathSettings | undefined;
  readonly nodeName: string;
  readonly namespace: string | undefined;
  readonly adminPort: number;
  readonly statusPort: number;
  readonly envoyLogLevel: EnvoyLogLevel;
  readonly ingress: IngressConfig;
}

/** The settings file (or the defaults), then the datapath settings with the flags over them. */
export function datapathFromFlags(values: Record<string, string | boolean | undefined>): {
  config: SkeinConfig;
  datapath: DatapathSettings | undefined;
} {
  const file = values['config'];
  const config = typeof file === 'string' ? loadConfigFile(path.resolve(file)) : defaultConfig();
  const d = config.datapath;
  const str = (flag: string): string | undefined => {
    const v = values[flag];
    return typeof v === 'string' ? v : undefined;
  };
  const flowEvents = str('flow-events') ?? d.flowEvents;
  if (!(FLOW_EVENT_LEVELS as readonly string[]).includes(flowEvents)) {
    throw new FlagError(`Cannot use --flow-events "${flowEvents}": it takes ${FLOW_EVENT_LEVELS.join('|')}`);
  }
  const pinFlag = str('pin-root');
  const pinRoot =
    pinFlag === undefined ? (d.pinRoot ?? path.join(d.bpffsRoot, 'skein')) : pathFlag('--pin-root', pinFlag);
  const cgroupFlag = str('cgroup-root');
  const stateFlag = str('state-dir');
  const proxyFlag = str('proxy-port');
  const lbFlag = str('kube-proxy-replacement');
  const l7Flag = str('l7-proxy');
  const settings: DatapathSettings = {
    bpffsRoot: pinFlag === undefined ? d.bpffsRoot : path.dirname(pinRoot),
    pinRoot,
    cgroupRoot: cgroupFlag === undefined ? d.cgroupRoot : pathFlag('--cgroup-root', cgroupFlag),
    stateDir: stateFlag === undefined ? d.stateDir : pathFlag('--state-dir', stateFlag),
    ...(d.netns === undefined ? {} : { netns: d.netns }),
    serviceLb:
      lbFlag === undefined ? config.kubeProxyReplacement : booleanFlag('--kube-proxy-replacement', lbFlag),
    l7Proxy: l7Flag === undefined ? config.l7Proxy : booleanFlag('--l7-proxy', l7Flag),
    proxyPort: proxyFlag === undefined ? d.proxyPort : portFlag('--proxy-port', proxyFlag, false),
    flowEvents: flowEvents as DatapathSettings['flowEvents'],
  };
  const enabled = d.enabled && values['no-datapath'] !== true;
  return { config, datapath: enabled ? settings : undefined };
}

/** Every flag value checked before anything starts; throws FlagError naming the flag. */
function checkFlags(values: Record<string, string | boolean | undefined>): AgentFlags {
  const { config, datapath } = datapathFromFlags(values);
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
  const ingress = ingressConfigFromFlags(values as Parameters<typeof ingressConfigFromFlags>[0]);
  return {
    config,
    datapath,
    nodeName,
    namespace: typeof ns === 'string' ? nameFlag('--namespace', ns) : undefined,
    adminPort: portFlag('--admin-port', String(values['admin-port']), true),
    statusPort: portFlag('--status-port', String(values['status-port']), true),
    envoyLogLevel: level as EnvoyLogLevel,
    // The flag wins over the file's controller name.
    ingress: { controllerName: config.ingressControllerName, ...ingress },
  };
}

/** `skein agent`. Exit codes as main.ts: 0 after a clean stop, 1 when it cannot start, 2 for bad usage. */
export async function runAgent(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      config: { type: 'string' },
      cleanup: { type: 'boolean', default: false },
      'no-datapath': { type: 'boolean', default: false },
      'kube-proxy-replacement': { type: 'string' },
      'l7-proxy': { type: 'string' },
      'pin-root': { type: 'string' },
      'cgroup-root': { type: 'string' },
      'state-dir': { type: 'string' },
      'proxy-port': { type: 'string' },
      'flow-events': { type: 'string' },
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
  if (values.cleanup === true) return await cleanup(values);
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
  if (flags.config.encryption.enabled) {
    logger.warn(
      `${ConfigCode.NotImplemented}: encryption.enabled is true (type ${flags.config.encryption.type}), but encryption is not implemented yet: traffic between nodes is not encrypted`,
    );
  }
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
      gatewayControllerName: flags.config.gatewayControllerName,
      ...(flags.datapath === undefined ? {} : { datapath: flags.datapath }),
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

/**
 * `skein agent --cleanup`: what the datapath attached, pinned and routed (under the pin root and in the
 * datapath's network namespace), removed and listed. 0 when done (also when there was nothing), 1 when
 * it cannot (not root), 2 for bad settings.
 */
async function cleanup(values: Record<string, string | boolean | undefined>): Promise<number> {
  let settings: DatapathSettings;
  try {
    const d = datapathFromFlags({ ...values, 'no-datapath': false });
    if (d.datapath === undefined) throw new Error('unreachable: the datapath settings are always made here');
    settings = d.datapath;
  } catch (e) {
    process.stderr.write(`skein agent: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    return 2;
  }
  try {
    // Imported here only: nothing else of `skein agent` needs the datapath's modules for this.
    const { cleanupDatapath } = await import('../datapath/cleanup.js');
    const { requireSupport } = await import('../datapath/addon.js');
    const { DEFAULT_MARKS } = await import('../datapath/policy.js');
    requireSupport();
    const removed = await cleanupDatapath({
      pinRoot: settings.pinRoot,
      ...(settings.netns === undefined ? {} : { netns: settings.netns }),
      proxyRouting: {
        mark: DEFAULT_MARKS.toProxy,
        mask: DEFAULT_MARKS.mask,
        ...(settings.netns === undefined ? {} : { netns: settings.netns }),
      },
    });
    if (removed.length === 0) {
      process.stdout.write(`nothing to remove: no pins under ${settings.pinRoot}, no proxy routing\n`);
    } else {
      process.stdout.write(`removed ${removed.length}:\n${removed.map((r) => `  ${r}\n`).join('')}`);
    }
    return 0;
  } catch (e) {
    process.stderr.write(
      `skein agent --cleanup: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`,
    );
    return 1;
  }
}
