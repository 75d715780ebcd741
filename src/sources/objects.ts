import type { IBackendTLSPolicy as IBackendTLSPolicyV1 } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/BackendTLSPolicy';
import type { IGateway } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway';
import type { IGatewayClass } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass';
import type { IGRPCRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GRPCRoute';
import type { IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import type { IReferenceGrant } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/ReferenceGrant';
import type { ITLSRoute as ITLSRouteV1 } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/TLSRoute';
import type { ITCPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1alpha2/TCPRoute';
import type { ITLSRoute as ITLSRouteV1alpha2 } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1alpha2/TLSRoute';
import type { IUDPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1alpha2/UDPRoute';
import type { IBackendTLSPolicy as IBackendTLSPolicyV1alpha3 } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1alpha3/BackendTLSPolicy';
import type { ITLSRoute as ITLSRouteV1alpha3 } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1alpha3/TLSRoute';
import type { IEndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1/EndpointSlice';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { IIngressClass } from 'kubernetes-models/networking.k8s.io/v1/IngressClass';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { ISecret } from 'kubernetes-models/v1/Secret';
import type { IService } from 'kubernetes-models/v1/Service';

/**
 * The typed Kubernetes objects every source (YAML directory, Kubernetes informers) produces and every
 * translator reads. Types come from @kubernetes-models; only `import type` is used, so no runtime code of
 * theirs is loaded.
 */
export type GatewayClass = IGatewayClass;
export type Gateway = IGateway;
export type HTTPRoute = IHTTPRoute;
export type Service = IService;
export type EndpointSlice = IEndpointSlice;
export type GRPCRoute = IGRPCRoute;
/**
 * v1 and v1beta1 ReferenceGrants have the same schema; the source rewrites v1beta1 to v1 when it reads
 * one, so every ReferenceGrant in an ObjectSet is a v1 object.
 */
export type ReferenceGrant = IReferenceGrant;
/**
 * v1 and v1alpha3 (same schema: `hostnames` required, one rule) or v1alpha2 (`hostnames` optional, up to
 * 16 rules). `apiVersion` is kept as written, because status is written back in that version.
 */
export type TLSRoute = ITLSRouteV1 | ITLSRouteV1alpha3 | ITLSRouteV1alpha2;
export type TCPRoute = ITCPRoute;
export type UDPRoute = IUDPRoute;
/** v1 or v1alpha3 (the same schema); `apiVersion` is kept as written. */
export type BackendTLSPolicy = IBackendTLSPolicyV1 | IBackendTLSPolicyV1alpha3;
/**
 * `data` (base64, as written) and `stringData` (plain) are kept as given; translators decode and merge
 * them. Never log a Secret or put its data in a message.
 */
export type Secret = ISecret;
/** Cluster-scoped. Carries the `kubernetes.io/metadata.name` label, as the API server sets it. */
export type Namespace = INamespace;
export type Ingress = IIngress;
/** Cluster-scoped. */
export type IngressClass = IIngressClass;
/** Read for the CA certificates of BackendTLSPolicies (`ca.crt`). */
export type ConfigMap = IConfigMap;
/** Read by the policy translator (src/policy/). */
export type NetworkPolicy = INetworkPolicy;
/** Read for policy: labels, addresses (`status.podIPs`), node, named container ports. */
export type Pod = IPod;

/** The kinds Skein reads, by `apiVersion` group and kind. */
export const knownKinds = {
  GatewayClass: 'gateway.networking.k8s.io',
  Gateway: 'gateway.networking.k8s.io',
  HTTPRoute: 'gateway.networking.k8s.io',
  Service: '',
  EndpointSlice: 'discovery.k8s.io',
  GRPCRoute: 'gateway.networking.k8s.io',
  ReferenceGrant: 'gateway.networking.k8s.io',
  TLSRoute: 'gateway.networking.k8s.io',
  TCPRoute: 'gateway.networking.k8s.io',
  UDPRoute: 'gateway.networking.k8s.io',
  BackendTLSPolicy: 'gateway.networking.k8s.io',
  Secret: '',
  Namespace: '',
  Ingress: 'networking.k8s.io',
  IngressClass: 'networking.k8s.io',
  ConfigMap: '',
  NetworkPolicy: 'networking.k8s.io',
  Pod: '',
} as const;
export type KnownKind = keyof typeof knownKinds;

/** One snapshot of everything a source has. Lists are sorted by namespace, then name. */
export interface ObjectSet {
  readonly gatewayClasses: readonly GatewayClass[];
  readonly gateways: readonly Gateway[];
  readonly httpRoutes: readonly HTTPRoute[];
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
  readonly grpcRoutes: readonly GRPCRoute[];
  readonly referenceGrants: readonly ReferenceGrant[];
  readonly tlsRoutes: readonly TLSRoute[];
  readonly tcpRoutes: readonly TCPRoute[];
  readonly udpRoutes: readonly UDPRoute[];
  readonly backendTLSPolicies: readonly BackendTLSPolicy[];
  readonly secrets: readonly Secret[];
  /** Only the namespaces the source declares; a namespace it does not declare has no labels. */
  readonly namespaces: readonly Namespace[];
  readonly ingresses: readonly Ingress[];
  readonly ingressClasses: readonly IngressClass[];
  readonly configMaps: readonly ConfigMap[];
  readonly networkPolicies: readonly NetworkPolicy[];
  readonly pods: readonly Pod[];
  /** Where each object came from (`kind/namespace/name` → `file.yaml#2`), for messages. */
  readonly origins: ReadonlyMap<string, string>;
}

export const emptyObjectSet: ObjectSet = {
  gatewayClasses: [],
  gateways: [],
  httpRoutes: [],
  services: [],
  endpointSlices: [],
  grpcRoutes: [],
  referenceGrants: [],
  tlsRoutes: [],
  tcpRoutes: [],
  udpRoutes: [],
  backendTLSPolicies: [],
  secrets: [],
  namespaces: [],
  ingresses: [],
  ingressClasses: [],
  configMaps: [],
  networkPolicies: [],
  pods: [],
  origins: new Map(),
};

/** `kind/namespace/name`, the key used in `origins`, status output and logs. */
export function objectKey(kind: string, namespace: string | undefined, name: string | undefined): string {
  return `${kind}/${namespace ?? ''}/${name ?? ''}`;
}

/** The status Skein computed for one object. `status` is the object's whole `.status`. */
export interface ObjectStatus {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly status: Readonly<Record<string, unknown>>;
}

/**
 * A problem in the input that is not a Kubernetes condition: a YAML syntax error, a field of the wrong
 * type. It names the file, the object and the field.
 */
export interface Diagnostic {
  readonly code: string;
  readonly severity: 'error' | 'warning';
  /** `file.yaml` or `file.yaml#2` (document index), when known. */
  readonly origin?: string;
  /** `kind/namespace/name`, when known. */
  readonly object?: string;
  /** Dotted field path, when known. */
  readonly field?: string;
  readonly message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = [d.origin, d.object, d.field].filter((x) => x !== undefined && x !== '').join(' ');
  return `${d.code}: ${where === '' ? '' : `${where}: `}${d.message}`;
}
