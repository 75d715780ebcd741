import type {
  handleBidiStreamingCall,
  handleUnaryCall,
  MethodDefinition,
  ServiceDefinition,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { TypeUrl } from './proto.js';
import type { StreamKind } from './status.js';
import {
  type Decoded,
  type DeltaRequest,
  decodeDeltaRequest,
  decodeSotwRequest,
  type SotwRequest,
} from './wire.js';

/**
 * The gRPC services of the xDS transport protocol, built by hand rather than from the .proto service
 * definitions so that the serializers are ours: requests decode to plain objects (never throwing, see
 * `Decoded`), and responses are the already assembled bytes from `wire.ts`, written as they are.
 */

export interface StreamMethod {
  readonly kind: StreamKind;
  readonly delta: boolean;
  /** The type a per-type service carries; undefined for the aggregated service. */
  readonly typeUrl: TypeUrl | undefined;
  readonly path: string;
}

export interface FetchMethod {
  readonly typeUrl: TypeUrl;
  readonly path: string;
}

interface ServiceSpec {
  /** Full service name. */
  readonly service: string;
  readonly short: 'ads' | 'lds' | 'rds' | 'cds' | 'eds' | 'sds';
  readonly typeUrl: TypeUrl | undefined;
  readonly sotw: string;
  readonly delta: string;
  readonly fetch: string | undefined;
}

const specs: readonly ServiceSpec[] = [
  {
    service: 'envoy.service.discovery.v3.AggregatedDiscoveryService',
    short: 'ads',
    typeUrl: undefined,
    sotw: 'StreamAggregatedResources',
    delta: 'DeltaAggregatedResources',
    fetch: undefined,
  },
  {
    service: 'envoy.service.listener.v3.ListenerDiscoveryService',
    short: 'lds',
    typeUrl: TypeUrl.Listener,
    sotw: 'StreamListeners',
    delta: 'DeltaListeners',
    fetch: 'FetchListeners',
  },
  {
    service: 'envoy.service.route.v3.RouteDiscoveryService',
    short: 'rds',
    typeUrl: TypeUrl.RouteConfiguration,
    sotw: 'StreamRoutes',
    delta: 'DeltaRoutes',
    fetch: 'FetchRoutes',
  },
  {
    service: 'envoy.service.cluster.v3.ClusterDiscoveryService',
    short: 'cds',
    typeUrl: TypeUrl.Cluster,
    sotw: 'StreamClusters',
    delta: 'DeltaClusters',
    fetch: 'FetchClusters',
  },
  {
    service: 'envoy.service.endpoint.v3.EndpointDiscoveryService',
    short: 'eds',
    typeUrl: TypeUrl.ClusterLoadAssignment,
    sotw: 'StreamEndpoints',
    delta: 'DeltaEndpoints',
    fetch: 'FetchEndpoints',
  },
  {
    service: 'envoy.service.secret.v3.SecretDiscoveryService',
    short: 'sds',
    typeUrl: TypeUrl.Secret,
    sotw: 'StreamSecrets',
    delta: 'DeltaSecrets',
    fetch: 'FetchSecrets',
  },
];

/** Full method path of the aggregated SotW stream (what Envoy's `ads_config` with GRPC calls). */
export const adsSotwPath = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
/** Full method path of the aggregated delta stream (`ads_config` with DELTA_GRPC). */
export const adsDeltaPath = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

export interface XdsHandlers {
  readonly sotw: (method: StreamMethod) => handleBidiStreamingCall<Decoded<SotwRequest>, Buffer>;
  readonly delta: (method: StreamMethod) => handleBidiStreamingCall<Decoded<DeltaRequest>, Buffer>;
  readonly fetch: (method: FetchMethod) => handleUnaryCall<Decoded<SotwRequest>, Buffer>;
}

export interface XdsService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

/** Responses are pre-encoded; the serializer only hands them over. */
const passBytes = (b: Buffer): Buffer => b;

/** Encoding requests is the client's job; a server-side definition needs the field but never calls it. */
const noRequestSerialize = (): Buffer => {
  throw new Error('server-side definition: requests are not serialized here');
};

function method<Req>(
  path: string,
  deserialize: (b: Buffer) => Req,
  requestStream: boolean,
  responseStream: boolean,
): MethodDefinition<Req, Buffer> {
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: noRequestSerialize,
    requestDeserialize: deserialize,
    responseSerialize: passBytes,
    responseDeserialize: passBytes,
  };
}

/** Every xDS service with its handlers, ready for `server.addService`. */
export function xdsServices(handlers: XdsHandlers): XdsService[] {
  return specs.map((spec) => {
    const definition: Record<string, ServiceDefinition[string]> = {};
    const implementation: UntypedServiceImplementation = {};
    const sotw: StreamMethod = {
      kind: spec.short === 'ads' ? 'ads-sotw' : `${spec.short}-sotw`,
      delta: false,
      typeUrl: spec.typeUrl,
      path: `/${spec.service}/${spec.sotw}`,
    };
    const delta: StreamMethod = {
      kind: spec.short === 'ads' ? 'ads-delta' : `${spec.short}-delta`,
      delta: true,
      typeUrl: spec.typeUrl,
      path: `/${spec.service}/${spec.delta}`,
    };
    definition[spec.sotw] = method(sotw.path, decodeSotwRequest, true, true);
    implementation[spec.sotw] = handlers.sotw(sotw);
    definition[spec.delta] = method(delta.path, decodeDeltaRequest, true, true);
    implementation[spec.delta] = handlers.delta(delta);
    if (spec.fetch !== undefined && spec.typeUrl !== undefined) {
      const fetch: FetchMethod = { typeUrl: spec.typeUrl, path: `/${spec.service}/${spec.fetch}` };
      definition[spec.fetch] = method(fetch.path, decodeSotwRequest, false, false);
      implementation[spec.fetch] = handlers.fetch(fetch);
    }
    return { definition, implementation };
  });
}
