import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

/**
 * The Envoy v3 API, loaded with protobufjs from the .proto files that ship inside the npm package
 * `@grpc/grpc-js-xds` (under `deps/`). Nothing is copied into this repository: the package version pins
 * the API version. Loading takes about 100 ms and happens once per process.
 */

/** Type URLs of the resources Skein serves. The literal types let maps keyed by them stay exhaustive. */
export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];
export const allTypeUrls: readonly TypeUrl[] = Object.values(TypeUrl);

/** Short names used in logs, metrics and `skein status`. */
export const typeShortName: Record<TypeUrl, string> = {
  [TypeUrl.Listener]: 'LDS',
  [TypeUrl.RouteConfiguration]: 'RDS',
  [TypeUrl.Cluster]: 'CDS',
  [TypeUrl.ClusterLoadAssignment]: 'EDS',
  [TypeUrl.Secret]: 'SDS',
};

export function isTypeUrl(s: string): s is TypeUrl {
  return (allTypeUrls as readonly string[]).includes(s);
}

/** The extension types Skein packs inside other resources (typed_config and friends). */
export const ExtensionType = {
  HttpConnectionManager:
    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  Router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  HttpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  DownstreamTlsContext: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  TcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  FileAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
  StdoutAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
} as const;

const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/listener/v3/lds.proto',
  'envoy/service/route/v3/rds.proto',
  'envoy/service/cluster/v3/cds.proto',
  'envoy/service/endpoint/v3/eds.proto',
  'envoy/service/secret/v3/sds.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
];

function includeDirs(): string[] {
  const require = createRequire(import.meta.url);
  const xdsPkg = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  const pbPkg = path.dirname(require.resolve('protobufjs/package.json'));
  const deps = ['envoy-api', 'googleapis', 'protoc-gen-validate', 'xds'].map((d) =>
    path.join(xdsPkg, 'deps', d),
  );
  // protobufjs ships google/protobuf/descriptor.proto and friends, which the Envoy API imports.
  return [...deps, pbPkg];
}

let root: protobuf.Root | undefined;

/** The loaded and resolved Envoy API. */
export function envoyRoot(): protobuf.Root {
  if (root !== undefined) return root;
  const dirs = includeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => {
    for (const d of dirs) {
      const candidate = path.join(d, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  r.loadSync(PROTO_FILES, { keepCase: false });
  r.resolveAll();
  root = r;
  return r;
}

const typeCache = new Map<string, protobuf.Type>();

/** Looks up a message type by its full name or its type URL. */
export function messageType(nameOrUrl: string): protobuf.Type {
  const name = nameOrUrl.startsWith('type.googleapis.com/')
    ? nameOrUrl.slice('type.googleapis.com/'.length)
    : nameOrUrl;
  let t = typeCache.get(name);
  if (t === undefined) {
    t = envoyRoot().lookupType(name);
    typeCache.set(name, t);
  }
  return t;
}

/**
 * An object in the JSON-ish shape protobufjs takes for `fromObject`: camelCase field names, enums by
 * name, durations as `{ seconds, nanos }`. An `Any` is written as `{ '@type': url, ...fields }` and packed
 * by `packAny` below before encoding.
 */
export type ProtoObject = { readonly [field: string]: unknown };

/**
 * Encodes `message` of type `typeUrl` into the bytes of an `Any`. Nested `{ '@type': … }` objects are
 * packed recursively, so translators can write typed_config inline.
 */
export function encodeAny(typeUrl: string, message: ProtoObject): Uint8Array {
  const value = encodeMessage(typeUrl, message);
  return messageType('google.protobuf.Any').encode({ type_url: typeUrl, value }).finish();
}

/** Encodes a message (not wrapped in Any), packing nested `@type` objects. Rejects unknown fields. */
export function encodeMessage(typeUrl: string, message: ProtoObject): Uint8Array {
  const type = messageType(typeUrl);
  const packed = packNested(message) as Record<string, unknown>;
  checkFields(type, packed, typeUrl);
  return type.encode(type.fromObject(packed)).finish();
}

/**
 * protobufjs's fromObject drops fields it does not know, which would turn a translator's typo into a
 * silently missing setting. This walks the object against the message type and throws on unknown fields.
 */
function checkFields(type: protobuf.Type, obj: Record<string, unknown>, where: string): void {
  for (const [key, value] of Object.entries(obj)) {
    const field = type.fields[key];
    if (field === undefined) throw new Error(`${where}: ${type.fullName} has no field "${key}"`);
    const rt = field.resolvedType;
    if (!(rt instanceof protobuf.Type) || rt.fullName === '.google.protobuf.Any') continue;
    if (rt.fullName.startsWith('.google.protobuf.') && rt.fullName !== '.google.protobuf.Struct') continue;
    const items = Array.isArray(value) ? value : field.map ? Object.values(value as object) : [value];
    for (const item of items) {
      if (item !== null && typeof item === 'object' && !(item instanceof Uint8Array)) {
        checkFields(rt, item as Record<string, unknown>, `${where}.${key}`);
      }
    }
  }
}

function packNested(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(packNested);
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (k !== '@type') out[k] = packNested(v);
  }
  const url = obj['@type'];
  if (typeof url === 'string') {
    // The well-known Any keeps its snake_case field names in protobufjs.
    return { type_url: url, value: encodeMessage(url, out) };
  }
  return out;
}

/** Decodes `Any` bytes back to a plain object (for tests, `skein translate -o json` and NACK logs). */
export function decodeAny(bytes: Uint8Array): { typeUrl: string; message: Record<string, unknown> } {
  const any = messageType('google.protobuf.Any').decode(bytes) as unknown as {
    type_url: string;
    value: Uint8Array;
  };
  const type = messageType(any.type_url);
  const message = type.toObject(type.decode(any.value), { enums: String, longs: Number, defaults: false });
  return { typeUrl: any.type_url, message: unpackNested(message) as Record<string, unknown> };
}

function unpackNested(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(unpackNested);
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return value;
  const obj = value as Record<string, unknown>;
  const url = obj['type_url'];
  if (typeof url === 'string' && obj['value'] instanceof Uint8Array && Object.keys(obj).length === 2) {
    const type = messageType(url);
    const inner = type.toObject(type.decode(obj['value']), { enums: String, longs: Number, defaults: false });
    return { '@type': url, ...(unpackNested(inner) as Record<string, unknown>) };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) out[k] = unpackNested(v);
  return out;
}
