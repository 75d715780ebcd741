import { messageType } from './proto.js';

/**
 * The bytes on the wire. Requests are small and decoded with protobufjs. Responses are assembled from the
 * pre-encoded resource bytes (`XdsResource.any` / `.deltaResource`), which every stream shares: only the
 * header fields (version, type, nonce, …) are encoded per response, and each resource is spliced in
 * behind a tag and length written here. Protobuf allows the elements of a repeated field to appear
 * anywhere in a message, so header-then-resources is a valid encoding that any parser reads back.
 */

/** The node fields the grouping strategy sees. */
export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  readonly userAgentName: string;
  /** `Node.metadata` as plain JSON. */
  readonly metadata: Readonly<Record<string, unknown>>;
}

/** `google.rpc.Status` as sent in a NACK. */
export interface ErrorDetail {
  readonly code: number;
  readonly message: string;
}

export interface SotwRequest {
  readonly versionInfo: string;
  readonly node: NodeInfo | undefined;
  readonly resourceNames: readonly string[];
  readonly typeUrl: string;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | undefined;
}

export interface DeltaRequest {
  readonly node: NodeInfo | undefined;
  readonly typeUrl: string;
  readonly resourceNamesSubscribe: readonly string[];
  readonly resourceNamesUnsubscribe: readonly string[];
  readonly initialResourceVersions: ReadonlyMap<string, string>;
  readonly responseNonce: string;
  readonly errorDetail: ErrorDetail | undefined;
}

/** What a request deserializer yields: never a throw, so one bad message cannot end a stream. */
export type Decoded<T> =
  | { readonly ok: true; readonly request: T }
  | { readonly ok: false; readonly error: string };

export interface SotwResponseHeader {
  readonly versionInfo: string;
  readonly typeUrl: string;
  readonly nonce: string;
  readonly controlPlane?: string;
}

export interface DeltaResponseHeader {
  readonly systemVersionInfo: string;
  readonly typeUrl: string;
  readonly nonce: string;
  readonly removedResources: readonly string[];
  readonly controlPlane?: string;
}

const DISCOVERY = 'envoy.service.discovery.v3';
/** Field number of `resources` in both DiscoveryResponse and DeltaDiscoveryResponse. */
const RESOURCES_FIELD = 2;

export function decodeSotwRequest(bytes: Uint8Array): Decoded<SotwRequest> {
  try {
    const m = toPlain(`${DISCOVERY}.DiscoveryRequest`, bytes);
    return {
      ok: true,
      request: {
        versionInfo: str(m['versionInfo']),
        node: node(m['node']),
        resourceNames: strings(m['resourceNames']),
        typeUrl: str(m['typeUrl']),
        responseNonce: str(m['responseNonce']),
        errorDetail: errorDetail(m['errorDetail']),
      },
    };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

export function decodeDeltaRequest(bytes: Uint8Array): Decoded<DeltaRequest> {
  try {
    const m = toPlain(`${DISCOVERY}.DeltaDiscoveryRequest`, bytes);
    const initial = m['initialResourceVersions'];
    return {
      ok: true,
      request: {
        node: node(m['node']),
        typeUrl: str(m['typeUrl']),
        resourceNamesSubscribe: strings(m['resourceNamesSubscribe']),
        resourceNamesUnsubscribe: strings(m['resourceNamesUnsubscribe']),
        initialResourceVersions: new Map(
          isRecord(initial) ? Object.entries(initial).map(([k, v]) => [k, str(v)] as const) : [],
        ),
        responseNonce: str(m['responseNonce']),
        errorDetail: errorDetail(m['errorDetail']),
      },
    };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** A DiscoveryResponse whose `resources` are the given encoded `google.protobuf.Any` messages. */
export function encodeSotwResponse(header: SotwResponseHeader, anys: readonly Uint8Array[]): Buffer {
  const head = messageType(`${DISCOVERY}.DiscoveryResponse`)
    .encode({
      versionInfo: header.versionInfo,
      typeUrl: header.typeUrl,
      nonce: header.nonce,
      ...(header.controlPlane === undefined ? {} : { controlPlane: { identifier: header.controlPlane } }),
    })
    .finish();
  return spliceRepeated(head, RESOURCES_FIELD, anys);
}

/** A DeltaDiscoveryResponse whose `resources` are the given encoded `envoy.service.discovery.v3.Resource`s. */
export function encodeDeltaResponse(header: DeltaResponseHeader, resources: readonly Uint8Array[]): Buffer {
  const head = messageType(`${DISCOVERY}.DeltaDiscoveryResponse`)
    .encode({
      systemVersionInfo: header.systemVersionInfo,
      typeUrl: header.typeUrl,
      nonce: header.nonce,
      removedResources: [...header.removedResources],
      ...(header.controlPlane === undefined ? {} : { controlPlane: { identifier: header.controlPlane } }),
    })
    .finish();
  return spliceRepeated(head, RESOURCES_FIELD, resources);
}

/**
 * Appends each item as a length-delimited occurrence of `field`. One allocation for the whole response;
 * the items are copied once into it (gRPC framing needs contiguous bytes anyway), never re-encoded.
 */
export function spliceRepeated(head: Uint8Array, field: number, items: readonly Uint8Array[]): Buffer {
  const tag = (field << 3) | 2; // wire type 2: length-delimited
  const tagSize = varintSize(tag);
  let size = head.length;
  for (const item of items) size += tagSize + varintSize(item.length) + item.length;
  const out = Buffer.allocUnsafe(size);
  out.set(head, 0);
  let at = head.length;
  for (const item of items) {
    at = writeVarint(out, at, tag);
    at = writeVarint(out, at, item.length);
    out.set(item, at);
    at += item.length;
  }
  return out;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

function toPlain(typeName: string, bytes: Uint8Array): Record<string, unknown> {
  checkFraming(bytes);
  const type = messageType(typeName);
  return type.toObject(type.decode(bytes), { longs: Number, enums: String, defaults: false }) as Record<
    string,
    unknown
  >;
}

/**
 * Walks the top-level fields and checks that every length fits the buffer. protobufjs reads a string
 * whose length overruns the buffer as a shorter string instead of failing; a request cut short must be
 * rejected, not half-understood.
 */
function checkFraming(bytes: Uint8Array): void {
  let at = 0;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = bytes[at++];
      if (b === undefined) throw new Error('truncated varint');
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (at < bytes.length) {
    const tag = varint();
    const wireType = tag & 7;
    if (tag < 8) throw new Error('field number 0');
    if (wireType === 0) varint();
    else if (wireType === 1) at += 8;
    else if (wireType === 2) {
      const len = varint();
      at += len;
    } else if (wireType === 5) at += 4;
    else throw new Error(`invalid wire type ${wireType}`);
    if (at > bytes.length) throw new Error(`field overruns the message (${at} > ${bytes.length})`);
  }
}

function node(value: unknown): NodeInfo | undefined {
  if (!isRecord(value)) return undefined;
  return {
    id: str(value['id']),
    cluster: str(value['cluster']),
    userAgentName: str(value['userAgentName']),
    metadata: structToJson(value['metadata']),
  };
}

function errorDetail(value: unknown): ErrorDetail | undefined {
  if (!isRecord(value)) return undefined;
  const code = value['code'];
  return { code: typeof code === 'number' ? code : 0, message: str(value['message']) };
}

/** `google.protobuf.Struct` (as protobufjs's toObject gives it) to plain JSON. */
export function structToJson(value: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = isRecord(value) ? value['fields'] : undefined;
  if (!isRecord(fields)) return out;
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  if (!isRecord(v)) return null;
  if ('stringValue' in v) return v['stringValue'];
  if ('numberValue' in v) return v['numberValue'];
  if ('boolValue' in v) return v['boolValue'];
  if ('structValue' in v) return structToJson(v['structValue']);
  if ('listValue' in v) {
    const list = v['listValue'];
    const values = isRecord(list) ? list['values'] : undefined;
    return Array.isArray(values) ? values.map(valueToJson) : [];
  }
  return null;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}
