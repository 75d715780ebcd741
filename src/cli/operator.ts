import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createLogger } from '../log.js';
import { startOperator } from '../operator.js';
import { KubeClient } from '../sources/kubernetes/kubeClient.js';
import { errorMessage } from '../sources/kubernetes/kubeCodes.js';
import { loadKubeConfig } from '../sources/kubernetes/loadKubeConfig.js';
import { parsePortFlag, parseSecondsFlag, untilSignal } from './kubeFlags.js';

const HELP = `Usage: skein operator [--kubeconfig PATH] [options]

Runs the cluster-wide operator: the same informers and translation as every agent, and leader
election on a Lease; the leader writes the status of GatewayClasses, Gateways, routes,
BackendTLSPolicies and Ingresses. Run two for availability. See docs/kubernetes.md.

Options:
  --namespace NS             read namespaced objects of NS only (default: all namespaces)
  --kubeconfig PATH          kubeconfig (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config)
  --lease-namespace NS       namespace of the Lease (default: the service account's namespace, else default)
  --lease-name NAME          name of the Lease (default: skein-operator)
  --identity ID              holder identity (default: <hostname>_<random>)
  --lease-duration S         seconds a Lease lasts without renewal (default: 15)
  --renew-deadline S         the leader steps down after failing to renew this long (default: 10)
  --retry-period S           seconds between attempts to acquire or renew (default: 2)
  --status-address HOST      address of /healthz, /readyz, /status, /metrics (default: 127.0.0.1)
  --status-port N            their port (default: 9903)
  --ingress-status-address A address written to Ingress status.loadBalancer (default: where it listens)
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

/** `skein operator`. Exit codes as main.ts: 0 after a clean stop, 1 when it cannot start, 2 for bad usage. */
export async function runOperator(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
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
      'ingress-status-address': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const statusPort = parsePortFlag('operator', '--status-port', values['status-port']);
  const leaseDurationMs = parseSecondsFlag('operator', '--lease-duration', values['lease-duration']);
  const renewDeadlineMs = parseSecondsFlag('operator', '--renew-deadline', values['renew-deadline']);
  const retryPeriodMs = parseSecondsFlag('operator', '--retry-period', values['retry-period']);
  if (
    statusPort === undefined ||
    leaseDurationMs === undefined ||
    renewDeadlineMs === undefined ||
    retryPeriodMs === undefined
  )
    return 2;
  if (!(retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
    process.stderr.write(
      `skein operator: need --retry-period < --renew-deadline < --lease-duration, got ${retryPeriodMs / 1000} s, ${renewDeadlineMs / 1000} s, ${leaseDurationMs / 1000} s\n`,
    );
    return 2;
  }
  let client: KubeClient;
  try {
    client = new KubeClient(loadKubeConfig(values.kubeconfig));
  } catch (e) {
    process.stderr.write(`skein operator: ${(e as { code?: string }).code ?? 'error'}: ${errorMessage(e)}\n`);
    return 2;
  }
  const logger = createLogger();
  const identity = values.identity ?? `${os.hostname()}_${randomBytes(4).toString('hex')}`;
  const statusAddress = values['ingress-status-address'];
  const operator = await startOperator({
    api: client,
    ...(values.namespace === undefined ? {} : { namespace: values.namespace }),
    logger,
    lease: {
      namespace: values['lease-namespace'] ?? defaultLeaseNamespace(),
      name: values['lease-name'],
      identity,
      leaseDurationMs,
      renewDeadlineMs,
      retryPeriodMs,
    },
    statusAddress: values['status-address'],
    statusPort,
    ...(statusAddress === undefined ? {} : { ingress: { statusAddress } }),
  });
  logger.info(`skein operator ${identity} is running against ${client.server}`);
  const signal = await untilSignal();
  logger.info(`${signal}: stopping`);
  await operator.stop();
  client.close();
  return 0;
}
