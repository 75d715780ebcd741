import path from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { translateGateway } from '../gateway/translate.js';
import { type IngressConfig, translateIngress } from '../ingress/translate.js';
import { createLogger } from '../log.js';
import { mergeIr } from '../model/merge.js';
import { loadDirectory } from '../sources/file/loadDirectory.js';
import { formatDiagnostic, type ObjectSet, type ObjectStatus, objectKey } from '../sources/objects.js';
import { TypeUrl } from '../xds/proto.js';
import { translateIr } from '../xds/translate/translate.js';
import { FlagError, INGRESS_FLAGS, INGRESS_FLAGS_HELP, ingressConfigFromFlags } from './flags.js';

const HELP = `Usage: skein translate --config-dir DIR [-o yaml|json] [--show ir|envoy|status] [--flavor envoy|grpc]

Translates a directory of Kubernetes YAML without starting anything, and prints:
  --show status   the input objects with their computed .status (default)
  --show ir       Skein's intermediate representation
  --show envoy    the Envoy resources (listeners, routes, clusters, endpoints, secrets)
Problems in the input go to stderr; the exit code is 1 if there were errors, 2 for a missing directory
or a bad flag value.

${INGRESS_FLAGS_HELP}`;

const SHOW = ['status', 'ir', 'envoy'] as const;

export async function runTranslate(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      'config-dir': { type: 'string' },
      output: { type: 'string', short: 'o', default: 'yaml' },
      show: { type: 'string', default: 'status' },
      flavor: { type: 'string', default: 'envoy' },
      ...INGRESS_FLAGS,
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const show = values.show;
  const output = values.output;
  const flavor = values.flavor;
  if (values['config-dir'] === undefined) {
    process.stderr.write(`skein translate: --config-dir is required\n\n${HELP}`);
    return 2;
  }
  if (!(SHOW as readonly string[]).includes(show) || (output !== 'yaml' && output !== 'json')) {
    process.stderr.write(`skein translate: --show takes ${SHOW.join('|')} and -o takes yaml|json\n`);
    return 2;
  }
  if (flavor !== 'envoy' && flavor !== 'grpc') {
    process.stderr.write('skein translate: --flavor takes envoy|grpc\n');
    return 2;
  }
  let ingressConfig: IngressConfig;
  try {
    ingressConfig = ingressConfigFromFlags(values);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`skein translate: ${e.code}: ${e.message}\n`);
    return 2;
  }
  const logger = createLogger();
  let loaded: Awaited<ReturnType<typeof loadDirectory>>;
  try {
    loaded = await loadDirectory(path.resolve(values['config-dir']), { logger });
  } catch (e) {
    if ((e as { code?: unknown }).code === 'SKEIN_SOURCE_NO_DIR') {
      process.stderr.write(`skein translate: SKEIN_SOURCE_NO_DIR: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
  const transitionTime = new Date().toISOString();
  const gateway = translateGateway(loaded.objects, { transitionTime });
  const ingress = translateIngress(loaded.objects, { ...ingressConfig, transitionTime });
  // The same merge as `skein up` (see controlPlane.ts): one IR, the Gateway API's first.
  const merged = mergeIr(gateway.ir, ingress.ir);
  const ingressReport = ingress.withMergeConflicts(merged.conflicts);
  const result = { ir: merged.ir, statuses: [...gateway.statuses, ...ingressReport.statuses] };
  const diagnostics = [
    ...loaded.diagnostics,
    ...gateway.diagnostics,
    ...ingressReport.diagnostics,
    ...ingressReport.unmatched.map((c) => ({
      code: c.code,
      severity: 'warning' as const,
      object: c.name,
      message: c.message,
    })),
  ];
  for (const d of diagnostics) process.stderr.write(`${d.severity}: ${formatDiagnostic(d)}\n`);

  let doc: unknown;
  if (show === 'ir')
    doc = { ...result.ir, secrets: result.ir.secrets.map((x) => ({ ...x, privateKey: '[redacted]' })) };
  else if (show === 'status') doc = withStatus(loaded.objects, result.statuses);
  else doc = envoyDocument(translateIr(result.ir, { flavor }));
  process.stdout.write(
    output === 'json'
      ? `${JSON.stringify(doc, null, 2)}\n`
      : stringify(doc, { aliasDuplicateObjects: false }),
  );
  return diagnostics.some((d) => d.severity === 'error') ? 1 : 0;
}

/** The input objects that got a status, as a Kubernetes List, each with its computed `.status`. */
function withStatus(objects: ObjectSet, statuses: readonly ObjectStatus[]): unknown {
  const byKey = new Map(statuses.map((s) => [objectKey(s.kind, s.namespace, s.name), s.status]));
  const items: unknown[] = [];
  for (const list of [
    objects.gatewayClasses,
    objects.gateways,
    objects.httpRoutes,
    objects.grpcRoutes,
    objects.tlsRoutes,
    objects.tcpRoutes,
    objects.udpRoutes,
    objects.backendTLSPolicies,
    objects.ingresses,
  ]) {
    for (const o of list) {
      const status = byKey.get(objectKey(o.kind, o.metadata?.namespace ?? '', o.metadata?.name));
      if (status !== undefined) items.push({ ...o, status });
    }
  }
  return { apiVersion: 'v1', kind: 'List', items };
}

const SECTIONS: Record<TypeUrl, string> = {
  [TypeUrl.Listener]: 'listeners',
  [TypeUrl.RouteConfiguration]: 'routes',
  [TypeUrl.Cluster]: 'clusters',
  [TypeUrl.ClusterLoadAssignment]: 'endpoints',
  [TypeUrl.Secret]: 'secrets',
};

function envoyDocument(specs: readonly { typeUrl: TypeUrl; message: object }[]): unknown {
  const doc: Record<string, unknown[]> = {};
  for (const s of specs) {
    const section = SECTIONS[s.typeUrl];
    const list = doc[section] ?? [];
    doc[section] = list;
    list.push({
      '@type': s.typeUrl,
      ...(s.typeUrl === TypeUrl.Secret ? redact(s.message) : s.message),
    });
  }
  return doc;
}

/** Private keys never go to a terminal or a CI log. */
function redact(message: object): object {
  return JSON.parse(JSON.stringify(message), (key, value: unknown) =>
    key === 'privateKey' ? { inlineString: '[redacted]' } : value,
  ) as object;
}
