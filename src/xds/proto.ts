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
  Cors: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors',
  CorsPolicy: 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
  HttpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  DownstreamTlsContext: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  UpstreamTlsContext: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  TcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  TlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  NetworkDirectResponse: 'type.googleapis.com/envoy.extensions.filters.network.direct_response.v3.Config',
  UdpProxy: 'type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig',
  UdpProxyRoute: 'type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route',
  SourcePortInput: 'type.googleapis.com/envoy.extensions.matching.common_inputs.network.v3.SourcePortInput',
  RuntimeFraction:
    'type.googleapis.com/envoy.extensions.matching.input_matchers.runtime_fraction.v3.RuntimeFraction',
  FileAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
  StdoutAccessLog: 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
  NetworkSetFilterState: 'type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config',
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
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/network/direct_response/v3/config.proto',
  'envoy/extensions/filters/network/set_filter_state/v3/set_filter_state.proto',
  'envoy/extensions/filters/udp/udp_proxy/v3/udp_proxy.proto',
  'envoy/extensions/filters/udp/udp_proxy/v3/route.proto',
  'envoy/extensions/matching/common_inputs/network/v3/network_inputs.proto',
  'envoy/extensions/matching/input_matchers/runtime_fraction/v3/runtime_fraction.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
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
  return new MessageEncoder().any(typeUrl, message);
}

/** Encodes a message (not wrapped in Any), packing nested `@type` objects. Rejects unknown fields. */
export function encodeMessage(typeUrl: string, message: ProtoObject): Uint8Array {
  return new MessageEncoder().message(typeUrl, message);
}

/**
 * Encodes messages, remembering the encoding of every item of a repeated message field by the item
 * object's identity. Repeated fields are where messages grow (the routes of a virtual host, the
 * endpoints of a cluster), and translators hand back the very same item objects for unchanged input, so
 * a route configuration in which one route of 10,000 changed encodes one route and copies the bytes of
 * the rest. Messages are never mutated once handed over (the translators' memo caches rely on that too).
 *
 * The bytes are exactly protobufjs's: it writes the fields of a message one after the other in field
 * number order, and a repeated message field as one (tag, length, item bytes) per item, so the
 * message's fields are written here in the same order, the items from the cache and each run of other
 * fields by protobufjs itself. Every object is still checked for unknown fields (`checkFields`), once,
 * when it is first encoded.
 */
export class MessageEncoder {
  /** Per message type: the encoding of each item object seen in a repeated field of that type. */
  readonly #items = new Map<protobuf.Type, WeakMap<object, Uint8Array>>();
  /** Per message type: how to write and check each field (reflection is slow: `fullName` is computed). */
  readonly #plans = new Map<protobuf.Type, TypePlan>();

  /** The bytes of an `Any` holding `message` of type `typeUrl`. */
  any(typeUrl: string, message: ProtoObject): Uint8Array {
    const value = this.message(typeUrl, message);
    return messageType('google.protobuf.Any').encode({ type_url: typeUrl, value }).finish();
  }

  /** The bytes of `message` of type `typeUrl` (not wrapped in Any). */
  message(typeUrl: string, message: ProtoObject): Uint8Array {
    return this.#encode(messageType(typeUrl), message, typeUrl);
  }

  #encode(type: protobuf.Type, obj: ProtoObject, where: string): Uint8Array {
    const plan = this.#plan(type);
    for (const key of Object.keys(obj)) {
      if (!plan.byName.has(key)) throw new Error(`${where}: ${type.fullName} has no field "${key}"`);
    }
    const w = protobuf.Writer.create();
    // Fields not taken from the item cache, written by protobufjs in one go when a cached field follows.
    let run: Record<string, unknown> | undefined;
    const flush = (): void => {
      if (run === undefined) return;
      this.#check(type, run, where);
      type.encode(type.fromObject(run), w);
      run = undefined;
    };
    for (const { field, itemType } of plan.byId) {
      if (!Object.hasOwn(obj, field.name)) continue;
      const value = obj[field.name];
      if (itemType === undefined || !Array.isArray(value) || !value.every(isPlainObject)) {
        run ??= {};
        run[field.name] = packNested(value);
        continue;
      }
      flush();
      const tag = ((field.id << 3) | 2) >>> 0;
      for (const item of value as readonly ProtoObject[]) {
        w.uint32(tag).bytes(this.#item(itemType, item, `${where}.${field.name}`));
      }
    }
    flush();
    return w.finish();
  }

  #item(type: protobuf.Type, item: ProtoObject, where: string): Uint8Array {
    let cache = this.#items.get(type);
    if (cache === undefined) {
      cache = new WeakMap();
      this.#items.set(type, cache);
    }
    let bytes = cache.get(item);
    if (bytes === undefined) {
      bytes = this.#encode(type, item, where);
      cache.set(item, bytes);
    }
    return bytes;
  }

  /**
   * protobufjs's fromObject drops fields it does not know, which would turn a translator's typo into a
   * silently missing setting. This walks the object against the message type and throws on unknown
   * fields. (`Any` contents were checked when packed; Google's well-known types are left alone.)
   */
  #check(type: protobuf.Type, obj: Record<string, unknown>, where: string): void {
    const plan = this.#plan(type);
    for (const [key, value] of Object.entries(obj)) {
      const p = plan.byName.get(key);
      if (p === undefined) throw new Error(`${where}: ${type.fullName} has no field "${key}"`);
      if (p.checked === undefined) continue;
      const items = Array.isArray(value) ? value : p.field.map ? Object.values(value as object) : [value];
      for (const item of items) {
        if (isPlainObject(item)) this.#check(p.checked, item as Record<string, unknown>, `${where}.${key}`);
      }
    }
  }

  #plan(type: protobuf.Type): TypePlan {
    let plan = this.#plans.get(type);
    if (plan === undefined) {
      const fields = type.fieldsArray.map((field): FieldPlan => {
        const rt = field.resolvedType;
        const name = rt instanceof protobuf.Type ? rt.fullName : undefined;
        const wellKnown = name?.startsWith('.google.protobuf.') ?? false;
        return {
          field,
          // Items encoded one by one: Envoy messages. Not `Any`, nor Google's well-known types, which
          // protobufjs converts specially; nor maps.
          itemType:
            field.repeated && !field.map && rt instanceof protobuf.Type && !wellKnown ? rt : undefined,
          checked:
            rt instanceof protobuf.Type && (!wellKnown || name === '.google.protobuf.Struct')
              ? rt
              : undefined,
        };
      });
      plan = {
        // The order protobufjs writes fields in.
        byId: [...fields].sort((a, b) => a.field.id - b.field.id),
        byName: new Map(fields.map((f) => [f.field.name, f])),
      };
      this.#plans.set(type, plan);
    }
    return plan;
  }
}

interface FieldPlan {
  readonly field: protobuf.Field;
  /** For a repeated field of Envoy messages: the item type, whose items are encoded and cached one by one. */
  readonly itemType: protobuf.Type | undefined;
  /** The message type `#check` walks into for this field, if any. */
  readonly checked: protobuf.Type | undefined;
}

interface TypePlan {
  readonly byId: readonly FieldPlan[];
  readonly byName: ReadonlyMap<string, FieldPlan>;
}

function isPlainObject(v: unknown): boolean {
  return v !== null && typeof v === 'object' && !(v instanceof Uint8Array);
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
