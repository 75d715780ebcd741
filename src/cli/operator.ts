import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { IngressConfig } from '../ingress/translate.js';
import { createLogger } from '../log.js';
import { startOperator } from '../operator.js';
import { KubeClient } from '../sources/kubernetes/kubeClient.js';
import { errorMessage } from '../sources/kubernetes/kubeCodes.js';
import { loadKubeConfig } from '../sources/kubernetes/loadKubeConfig.js';
import { defaultConfig, loadConfigFile, type SkeinConfig } from './configFile.js';
import { FlagError, INGRESS_FLAGS, INGRESS_FLAGS_HELP, ingressConfigFromFlags, portFlag } from './flags.js';
import { nameFlag, secondsFlag, untilSignal } from './kubeFlags.js';

const HELP = `Usage: skein operator [--kubeconfig PATH] [options]

Runs the cluster-wide operator: the same informers and translation as every agent, and leader
election on a Lease; the leader writes the status of GatewayClasses, Gateways, routes,
BackendTLSPolicies and Ingresses. Run two for availability. See docs/kubernetes.md.

Options:
  --config PATH              settings file (the Helm chart's config.yaml): the controller names; flags override it
  --kubeconfig PATH          kubeconfig (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)
  --namespace NS             read namespaced objects of NS only (default: all namespaces)
  --lease-namespace NS       namespace of the Lease (default: the service account's namespace, else default)
  --lease-name NAME          name of the Lease (default: skein-operator)
  --identity ID              holder identity (default: <hostname>_<random>)
  --lease-duration S         seconds a Lease lasts without renewal (default: 15)
  --renew-deadline S         the leader steps down after failing to renew this long (default: 10)
  --retry-period S           seconds between attempts to acquire or renew (default: 2)
  --status-address IP        address of /healthz, /readyz, /status, /metrics (default: 127.0.0.1)
  --status-port N            their port (default: 9903)

${INGRESS_FLAGS_HELP}
Give the operator the agents' Ingress flags: its status must describe what the agents serve.
`;

const SA_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function defaultLeaseNamespace(): string {
  try {
    const ns = readFileSync(SA_NAMESPACE_FILE, 'utf8').trim();
    return ns === '' ? 'default' : ns;
  } catch {
    return 'default';
  }
}

interface OperatorFlags {
  readonly config: SkeinConfig;
  readonly namespace: string | undefined;
  readonly leaseNamespace: string;
  readonly leaseName: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly statusPort: number;
  readonly ingress: IngressConfig;
}

/** Every flag value checked before anything starts; throws FlagError naming the flag. */
function checkFlags(values: Record<string, string | boolean | undefined>): OperatorFlags {
  const file = values['config'];
  const config = typeof file === 'string' ? loadConfigFile(path.resolve(file)) : defaultConfig();
  const leaseDurationMs = secondsFlag('--lease-duration', String(values['lease-duration']));
  const renewDeadlineMs = secondsFlag('--renew-deadline', String(values['renew-deadline']));
  const retryPeriodMs = secondsFlag('--retry-period', String(values['retry-period']));
  if (!(retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    throw new FlagError(
      `Cannot elect a leader with --retry-period ${retryPeriodMs / 1000}, --renew-deadline ${renewDeadlineMs / 1000} and --lease-duration ${leaseDurationMs / 1000}: need retry period < renew deadline < lease duration`,
    );
  }
  const statusAddress = String(values['status-address']);
  if (isIP(statusAddress) === 0) {
    throw new FlagError(`Cannot use --status-address "${statusAddress}": it must be an IP address`);
  }
  const ns = values['namespace'];
  const leaseNs = values['lease-namespace'];
  return {
    config,
    namespace: typeof ns === 'string' ? nameFlag('--namespace', ns) : undefined,
    leaseNamespace:
      typeof leaseNs === 'string' ? nameFlag('--lease-namespace', leaseNs) : defaultLeaseNamespace(),
    leaseName: nameFlag('--lease-name', String(values['lease-name'])),
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
    statusPort: portFlag('--status-port', String(values['status-port']), true),
    // The flag wins over the file's controller name.
    ingress: {
      controllerName: config.ingressControllerName,
      ...ingressConfigFromFlags(values as Parameters<typeof ingressConfigFromFlags>[0]),
    },
  };
}

/** `skein operator`. Exit codes as main.ts: 0 after a clean stop, 1 when it cannot start, 2 for bad usage. */
export async function runOperator(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      config: { type: 'string' },
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'lease-namespace': { type: 'string' },
      'lease-name': { type: 'string', default: 'skein-operator' },
      identity: { type: 'string' },
      'lease-duration': { type: 'string', default: '15' },
      'renew-deadline': { type: 'string', default: '10' },
      'retry-period': { type: 'string', default: '2' },
      'status-address': { type: 'string', default: '127.0.0.1' },
      'status-port': { type: 'string', default: '9903' },
      ...INGRESS_FLAGS,
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  let flags: OperatorFlags;
  let client: KubeClient;
  try {
    flags = checkFlags(values);
    client = new KubeClient(loadKubeConfig(values.kubeconfig));
  } catch (e) {
    process.stderr.write(`skein operator: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    return 2;
  }
  const logger = createLogger();
  const identity = values.identity ?? `${os.hostname()}_${randomBytes(4).toString('hex')}`;
  let operator: Awaited<ReturnType<typeof startOperator>>;
  try {
    operator = await startOperator({
      api: client,
      ...(flags.namespace === undefined ? {} : { namespace: flags.namespace }),
      logger,
      lease: {
        namespace: flags.leaseNamespace,
        name: flags.leaseName,
        identity,
        leaseDurationMs: flags.leaseDurationMs,
        renewDeadlineMs: flags.renewDeadlineMs,
        retryPeriodMs: flags.retryPeriodMs,
      },
      statusAddress: values['status-address'],
      statusPort: flags.statusPort,
      ingress: flags.ingress,
      gatewayControllerName: flags.config.gatewayControllerName,
    });
  } catch (e) {
    // Start-up failures (a socket or port in use, no Envoy) are one line with their code, not a stack.
    process.stderr.write(`skein operator: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    client.close();
    return 1;
  }
  logger.info(`skein operator ${identity} is running against ${client.server}`);
  const signal = await untilSignal();
  logger.info(`${signal}: stopping`);
  await operator.stop();
  client.close();
  return 0;
}
