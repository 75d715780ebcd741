import type { KnownKind, ObjectSet } from '../objects.js';

/** One kind as the API server serves it. */
export interface KubeResource {
  readonly kind: string;
  /** '' for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespaced: boolean;
}

/** A translator input: the resource, and the ObjectSet list it fills. */
export interface InputResource extends KubeResource {
  readonly kind: KnownKind;
  readonly field: Exclude<keyof ObjectSet, 'origins'>;
}

const gw = (
  kind: KnownKind,
  plural: string,
  field: InputResource['field'],
  version = 'v1',
): InputResource => ({
  kind,
  group: 'gateway.networking.k8s.io',
  version,
  plural,
  namespaced: kind !== 'GatewayClass',
  field,
});

/**
 * The kinds the translators read, in the version Skein watches. A kind served in several versions is
 * watched in one: the API server converts, and status is written back in that version. TCPRoute and
 * UDPRoute stay on v1alpha2, the version the translators' types describe (the Gateway API also serves
 * them as v1 from 1.5 on, with the same schema).
 */
export const inputResources: readonly InputResource[] = [
  gw('GatewayClass', 'gatewayclasses', 'gatewayClasses'),
  gw('Gateway', 'gateways', 'gateways'),
  gw('HTTPRoute', 'httproutes', 'httpRoutes'),
  gw('GRPCRoute', 'grpcroutes', 'grpcRoutes'),
  gw('TLSRoute', 'tlsroutes', 'tlsRoutes'),
  gw('TCPRoute', 'tcproutes', 'tcpRoutes', 'v1alpha2'),
  gw('UDPRoute', 'udproutes', 'udpRoutes', 'v1alpha2'),
  gw('ReferenceGrant', 'referencegrants', 'referenceGrants'),
  gw('BackendTLSPolicy', 'backendtlspolicies', 'backendTLSPolicies'),
  { kind: 'Service', group: '', version: 'v1', plural: 'services', namespaced: true, field: 'services' },
  {
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    namespaced: true,
    field: 'endpointSlices',
  },
  {
    kind: 'Namespace',
    group: '',
    version: 'v1',
    plural: 'namespaces',
    namespaced: false,
    field: 'namespaces',
  },
  {
    kind: 'Ingress',
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'ingresses',
    namespaced: true,
    field: 'ingresses',
  },
  {
    kind: 'IngressClass',
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'ingressclasses',
    namespaced: false,
    field: 'ingressClasses',
  },
  // Read by name only (see referencedObjects.ts), never listed whole.
  { kind: 'Secret', group: '', version: 'v1', plural: 'secrets', namespaced: true, field: 'secrets' },
  {
    kind: 'ConfigMap',
    group: '',
    version: 'v1',
    plural: 'configmaps',
    namespaced: true,
    field: 'configMaps',
  },
];

export function inputResource(kind: KnownKind): InputResource {
  const r = inputResources.find((x) => x.kind === kind);
  if (r === undefined) throw new Error(`no resource for kind ${kind}`);
  return r;
}

/**
 * Kinds only the agent reads, for the datapath: its own Pods and Node, and NetworkPolicies. Pods and
 * NetworkPolicies fill their ObjectSet lists (the policy translator reads them); the Node is read from
 * the store by name (its addresses are the host identity's).
 */
export const nodeResources = {
  Pod: { kind: 'Pod', group: '', version: 'v1', plural: 'pods', namespaced: true, field: 'pods' },
  Node: { kind: 'Node', group: '', version: 'v1', plural: 'nodes', namespaced: false },
  NetworkPolicy: {
    kind: 'NetworkPolicy',
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'networkpolicies',
    namespaced: true,
    field: 'networkPolicies',
  },
} as const satisfies Record<string, KubeResource & { field?: InputResource['field'] }>;

/** Every kind that fills an ObjectSet list: the translators' inputs, then the agent's Pods and NetworkPolicies. */
export const listedResources: readonly { readonly kind: string; readonly field: InputResource['field'] }[] = [
  ...inputResources,
  nodeResources.Pod,
  nodeResources.NetworkPolicy,
];

export const leaseResource: KubeResource = {
  kind: 'Lease',
  group: 'coordination.k8s.io',
  version: 'v1',
  plural: 'leases',
  namespaced: true,
};

export function apiVersionOf(r: KubeResource): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

/**
 * The URL path of a collection (`name` undefined) or of one object, optionally a subresource. A
 * namespaced resource without `namespace` is the collection across all namespaces.
 */
export function resourcePath(
  r: KubeResource,
  where: {
    readonly namespace?: string | undefined;
    readonly name?: string;
    readonly subresource?: string;
  } = {},
): string {
  const root = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
  const ns =
    r.namespaced && where.namespace !== undefined ? `/namespaces/${encodeURIComponent(where.namespace)}` : '';
  const name = where.name === undefined ? '' : `/${encodeURIComponent(where.name)}`;
  const sub = where.subresource === undefined ? '' : `/${where.subresource}`;
  return `${root}${ns}/${r.plural}${name}${sub}`;
}
