import type { IGateway } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway';
import type { IGatewayClass } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/GatewayClass';
import type { IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import type { IEndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1/EndpointSlice';
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

/** The kinds Skein reads, by `apiVersion` group and kind. */
export const knownKinds = {
  GatewayClass: 'gateway.networking.k8s.io',
  Gateway: 'gateway.networking.k8s.io',
  HTTPRoute: 'gateway.networking.k8s.io',
  Service: '',
  EndpointSlice: 'discovery.k8s.io',
} as const;
export type KnownKind = keyof typeof knownKinds;

/** One snapshot of everything a source has. Lists are sorted by namespace, then name. */
export interface ObjectSet {
  readonly gatewayClasses: readonly GatewayClass[];
  readonly gateways: readonly Gateway[];
  readonly httpRoutes: readonly HTTPRoute[];
  readonly services: readonly Service[];
  readonly endpointSlices: readonly EndpointSlice[];
  /** Where each object came from (`kind/namespace/name` → `file.yaml#2`), for messages. */
  readonly origins: ReadonlyMap<string, string>;
}

export const emptyObjectSet: ObjectSet = {
  gatewayClasses: [],
  gateways: [],
  httpRoutes: [],
  services: [],
  endpointSlices: [],
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
