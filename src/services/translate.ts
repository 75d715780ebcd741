import { isIP } from 'node:net';
import {
  AFFINITY_TIMEOUT_DEFAULT_SECONDS,
  AFFINITY_TIMEOUT_MAX_SECONDS,
  invalidServices,
  type LbAlgorithm,
  LbIrErrorCode,
  type LbServiceIr,
  type LbSessionAffinity,
  type ServicesIr,
  serviceKeyString,
  serviceSocket,
  validateServices,
} from '../model/serviceLb.js';
import {
  type Diagnostic,
  type EndpointSlice,
  type ObjectSet,
  objectKey,
  type Service,
} from '../sources/objects.js';
import { ANNOTATION_PREFIX, LB_ALGORITHM_ANNOTATION, ServicesCode } from './codes.js';
import { portBackends, slicesByService } from './endpoints.js';

export interface ServicesResult {
  readonly ir: ServicesIr;
  readonly diagnostics: readonly Diagnostic[];
}

/**
 * Kubernetes Services and EndpointSlices → the services IR that socket-level load-balancing programs
 * (the kube-proxy replacement for ClusterIP). Pure and deterministic. Per Service, sorted by namespace
 * and name:
 *
 * 1. Skip what has no cluster IP to balance: ExternalName, headless (`clusterIP: None`), not yet allocated.
 * 2. Read Skein's annotations (the algorithm) and the session affinity.
 * 3. Per port (SCTP is not balanced) and per cluster IP (`clusterIPs`, both families when dual-stack):
 *    one IR service whose backends are that family's endpoints of the port (./endpoints.ts).
 * 4. Check the result with validateServices; what fails is dropped with SKEIN_SERVICES_INTERNAL.
 *
 * NodePort, LoadBalancer and externalIPs addresses, internalTrafficPolicy and topology hints are not
 * applied: every usable endpoint serves every client.
 */
export function translateServices(objects: Pick<ObjectSet, 'services' | 'endpointSlices'>): ServicesResult {
  const diagnostics: Diagnostic[] = [];
  const slices = slicesByService(objects.endpointSlices);
  const services: LbServiceIr[] = [];
  for (const svc of sortServices(objects.services)) {
    const namespace = svc.metadata?.namespace ?? 'default';
    const name = svc.metadata?.name ?? '';
    services.push(
      ...translateService(svc, namespace, name, slices.get(`${namespace}/${name}`) ?? [], diagnostics),
    );
  }
  const errors = validateServices({ services });
  const bad = invalidServices(errors);
  for (const e of errors) {
    diagnostics.push({
      code: ServicesCode.Internal,
      severity: 'error',
      field: e.path,
      message: `${e.code}: ${e.message}`,
    });
  }
  return { ir: { services: services.filter((_, i) => !bad.has(i)) }, diagnostics };
}

export interface ServicesTranslator {
  /** What translateServices returns for `objects`; services whose inputs are unchanged are the same objects. */
  translate(objects: Pick<ObjectSet, 'services' | 'endpointSlices'>): ServicesResult;
}

/**
 * translateServices, memoised per Service: a Service whose object and EndpointSlices (by identity, as
 * the sources keep unchanged objects) are those of the last call is not translated or validated again,
 * and its IR services are the very same objects, so the load-balancing planner's own memo hits too. A
 * build costs a pass over the Services and slices, and the translation of what changed.
 */
export function createServicesTranslator(): ServicesTranslator {
  interface Entry {
    readonly slices: readonly EndpointSlice[];
    readonly services: readonly LbServiceIr[];
    readonly diagnostics: readonly Diagnostic[];
  }
  let memo = new Map<Service, Entry>();
  return {
    translate(objects) {
      const slices = slicesByService(objects.endpointSlices);
      const next = new Map<Service, Entry>();
      const services: LbServiceIr[] = [];
      const diagnostics: Diagnostic[] = [];
      const seen = new Set<string>();
      for (const svc of sortServices(objects.services)) {
        const namespace = svc.metadata?.namespace ?? 'default';
        const name = svc.metadata?.name ?? '';
        const own = slices.get(`${namespace}/${name}`) ?? [];
        let entry = memo.get(svc);
        if (entry === undefined || !sameItems(entry.slices, own)) {
          const found: Diagnostic[] = [];
          const translated = translateService(svc, namespace, name, own, found);
          entry = { slices: own, ...checked(translated, found) };
        }
        next.set(svc, entry);
        diagnostics.push(...entry.diagnostics);
        for (const s of entry.services) {
          // Cluster IPs are unique in a cluster; a clash means a bad input, and the first Service keeps it.
          const key = serviceKeyString(s);
          if (seen.has(key)) {
            diagnostics.push({
              code: ServicesCode.Internal,
              severity: 'error',
              object: objectKey('Service', namespace, name),
              message: `${LbIrErrorCode.DuplicateService}: ${s.name} ${serviceSocket(s)}: an earlier Service has the same address, port and protocol`,
            });
            continue;
          }
          seen.add(key);
          services.push(s);
        }
      }
      memo = next;
      return { ir: { services }, diagnostics };
    },
  };
}

/** One Service's IR services, those that validate, and a diagnostic for each problem of the others. */
function checked(
  services: readonly LbServiceIr[],
  diagnostics: Diagnostic[],
): { services: readonly LbServiceIr[]; diagnostics: readonly Diagnostic[] } {
  const errors = validateServices({ services });
  const bad = invalidServices(errors);
  for (const e of errors) {
    diagnostics.push({
      code: ServicesCode.Internal,
      severity: 'error',
      field: e.path,
      message: `${e.code}: ${e.message}`,
    });
  }
  return { services: services.filter((_, i) => !bad.has(i)), diagnostics };
}

function sortServices(list: readonly Service[]): Service[] {
  return [...list].sort((a, b) => {
    const ka = `${a.metadata?.namespace ?? 'default'}/${a.metadata?.name ?? ''}`;
    const kb = `${b.metadata?.namespace ?? 'default'}/${b.metadata?.name ?? ''}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function translateService(
  svc: Service,
  namespace: string,
  name: string,
  slices: readonly EndpointSlice[],
  diagnostics: Diagnostic[],
): LbServiceIr[] {
  const spec = svc.spec ?? {};
  const object = objectKey('Service', namespace, name);
  const report = (
    code: ServicesCode,
    field: string,
    message: string,
    severity: Diagnostic['severity'] = 'warning',
  ) => {
    diagnostics.push({ code, severity, object, field, message });
  };

  // Step 1: the addresses to balance.
  if (spec.type === 'ExternalName') return [];
  const listed =
    spec.clusterIPs !== undefined && spec.clusterIPs.length > 0 ? spec.clusterIPs : [spec.clusterIP ?? ''];
  const field =
    spec.clusterIPs !== undefined && spec.clusterIPs.length > 0 ? 'spec.clusterIPs' : 'spec.clusterIP';
  const addresses: { address: string; family: 4 | 6 }[] = [];
  listed.forEach((ip, i) => {
    if (ip === '' || ip === 'None') return;
    const family = isIP(ip);
    if (family === 0) {
      report(
        ServicesCode.InvalidClusterIp,
        field === 'spec.clusterIPs' ? `${field}[${i}]` : field,
        `"${ip}" is not an IP address; it is not balanced`,
        'error',
      );
      return;
    }
    addresses.push({ address: ip, family: family as 4 | 6 });
  });
  if (addresses.length === 0) return [];

  // Step 2: how to pick a backend.
  const algorithm = readAnnotations(svc.metadata?.annotations ?? {}, report);
  const affinity = readAffinity(spec, report);

  // Step 3: one IR service per port and address.
  const out: LbServiceIr[] = [];
  (spec.ports ?? []).forEach((port, i) => {
    const protocol = port.protocol ?? 'TCP';
    if (protocol !== 'TCP' && protocol !== 'UDP') {
      report(
        ServicesCode.UnsupportedProtocol,
        `spec.ports[${i}].protocol`,
        `${protocol} is not balanced at the socket (TCP and UDP are)`,
      );
      return;
    }
    const portName = port.name ?? '';
    for (const { address, family } of addresses) {
      out.push({
        name: `${namespace}/${name}/${portName === '' ? port.port : portName}`,
        address,
        port: port.port,
        protocol,
        algorithm,
        ...(affinity === undefined ? {} : { sessionAffinity: affinity }),
        backends: portBackends(slices, portName, protocol, family),
      });
    }
  });
  return out;
}

type Report = (code: ServicesCode, field: string, message: string) => void;

function readAnnotations(annotations: Readonly<Record<string, string>>, report: Report): LbAlgorithm {
  let algorithm: LbAlgorithm = 'random';
  for (const [key, value] of Object.entries(annotations).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!key.startsWith(ANNOTATION_PREFIX)) continue;
    const field = `metadata.annotations["${key}"]`;
    if (key !== LB_ALGORITHM_ANNOTATION) {
      report(ServicesCode.InvalidAnnotation, field, `Skein knows no annotation ${key}; it is ignored`);
      continue;
    }
    if (value === 'random' || value === 'maglev') algorithm = value;
    else report(ServicesCode.InvalidAnnotation, field, `"${value}" is not random or maglev; random is used`);
  }
  return algorithm;
}

function readAffinity(spec: NonNullable<Service['spec']>, report: Report): LbSessionAffinity | undefined {
  if (spec.sessionAffinity !== 'ClientIP') return undefined;
  const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? AFFINITY_TIMEOUT_DEFAULT_SECONDS;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > AFFINITY_TIMEOUT_MAX_SECONDS) {
    report(
      ServicesCode.InvalidAffinity,
      'spec.sessionAffinityConfig.clientIP.timeoutSeconds',
      `${timeout} is not a whole number of seconds in 1..${AFFINITY_TIMEOUT_MAX_SECONDS}; the port is balanced without affinity`,
    );
    return undefined;
  }
  return { type: 'ClientIP', timeoutSeconds: timeout };
}
