import { type ProtoObject, TypeUrl } from '../proto.js';
import type { ResourceKey } from '../resource.js';

/**
 * Small builders for values that recur across Envoy messages, in the camelCase object shape
 * `encodeAny` takes (see proto.ts).
 */

/** A `google.protobuf.Duration` from milliseconds. Nanos are left out when zero, to keep goldens short. */
export function durationMs(ms: number): ProtoObject {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1_000_000);
  return nanos === 0 ? { seconds } : { seconds, nanos };
}

/**
 * The config source of everything Skein serves: the same ADS stream the client already has. One stream
 * is what lets the server order sends across types (clusters before routes that use them).
 */
export const adsConfigSource: ProtoObject = { ads: {}, resourceApiVersion: 'V3' };

/** `google.protobuf.BoolValue` and friends are messages: `{ value }`. */
export function wrapped<T extends boolean | number>(value: T): ProtoObject {
  return { value };
}

export function clusterKey(name: string): ResourceKey {
  return { typeUrl: TypeUrl.Cluster, name };
}

export function endpointsKey(name: string): ResourceKey {
  return { typeUrl: TypeUrl.ClusterLoadAssignment, name };
}

export function routeConfigKey(name: string): ResourceKey {
  return { typeUrl: TypeUrl.RouteConfiguration, name };
}

export function secretKey(name: string): ResourceKey {
  return { typeUrl: TypeUrl.Secret, name };
}
