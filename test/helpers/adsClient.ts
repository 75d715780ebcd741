import { Client, type ClientDuplexStream, credentials, type ServiceError } from '@grpc/grpc-js';
import { decodeAny, messageType, TypeUrl } from '../../src/xds/proto.js';

/**
 * A raw xDS test client on @grpc/grpc-js. Requests are encoded and responses decoded with protobufjs,
 * independently of the server's hand-assembled bytes; the resources' raw bytes are cut out of each
 * response with a small wire-format reader, so tests can compare them with `XdsResource.any`.
 *
 * Like go-control-plane's fake stream, every response is checked against the protocol rules as it
 * arrives (nonce increases, type URL requested and matching its resources, version set, at most one
 * unanswered response per type); breaches collect in `violations`, which tests assert empty.
 *
 * `EnvoyLike` on top behaves like Envoy's ADS client: wildcard CDS and LDS, EDS for the clusters it gets,
 * RDS and SDS for what its listeners name, an ACK for everything, and make-before-break checks on what it
 * is sent.
 */

export const adsSotwPath = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const adsDeltaPath = '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

export interface TestNode {
  readonly id: string;
  readonly cluster?: string;
  readonly userAgentName?: string;
}

export interface ErrorDetailInit {
  readonly code?: number;
  readonly message: string;
}

export interface SotwRequestInit {
  readonly typeUrl: string;
  readonly resourceNames?: readonly string[];
  readonly versionInfo?: string;
  readonly responseNonce?: string;
  readonly errorDetail?: ErrorDetailInit;
  readonly node?: TestNode;
}

export interface DeltaRequestInit {
  readonly typeUrl: string;
  readonly subscribe?: readonly string[];
  readonly unsubscribe?: readonly string[];
  readonly initialResourceVersions?: Readonly<Record<string, string>>;
  readonly responseNonce?: string;
  readonly errorDetail?: ErrorDetailInit;
  readonly node?: TestNode;
}

export interface ReceivedResource {
  readonly name: string;
  readonly typeUrl: string;
  /** The exact bytes of the google.protobuf.Any on the wire. */
  readonly any: Buffer;
  readonly message: Record<string, unknown>;
  /** Delta only: Resource.version. */
  readonly version?: string;
}

export interface SotwResponse {
  readonly versionInfo: string;
  readonly typeUrl: string;
  readonly nonce: string;
  readonly controlPlane: string | undefined;
  readonly resources: readonly ReceivedResource[];
  readonly raw: Buffer;
}

export interface DeltaResponse {
  readonly systemVersionInfo: string;
  readonly typeUrl: string;
  readonly nonce: string;
  readonly removed: readonly string[];
  readonly resources: readonly ReceivedResource[];
  readonly raw: Buffer;
}

export interface StreamEnd {
  readonly code: number;
  readonly details: string;
}

const DISCOVERY = 'envoy.service.discovery.v3';

/** One gRPC channel to the server under test. */
export class XdsTestClient {
  readonly #client: Client;
  readonly #streams: Array<XdsTestStream<unknown, unknown>> = [];

  constructor(address: string) {
    this.#client = new Client(address, credentials.createInsecure());
  }

  sotw(path: string = adsSotwPath): XdsTestStream<SotwRequestInit, SotwResponse> {
    return this.#open(path, encodeSotwRequest, decodeSotwResponse, false);
  }

  delta(path: string = adsDeltaPath): XdsTestStream<DeltaRequestInit, DeltaResponse> {
    return this.#open(path, encodeDeltaRequest, decodeDeltaResponse, true);
  }

  /** Cancels every stream and closes the channel. */
  close(): void {
    for (const s of this.#streams) s.cancel();
    this.#client.close();
  }

  #open<Req, Res extends SotwResponse | DeltaResponse>(
    path: string,
    encode: (r: Req) => Buffer,
    decode: (b: Buffer) => Res,
    delta: boolean,
  ): XdsTestStream<Req, Res> {
    const call = this.#client.makeBidiStreamRequest<Buffer, Buffer>(
      path,
      (b) => b,
      (b) => b,
    );
    const s = new XdsTestStream<Req, Res>(call, encode, decode, delta);
    this.#streams.push(s as XdsTestStream<unknown, unknown>);
    return s;
  }
}

export class XdsTestStream<Req, Res> {
  /** Every response, in order. */
  readonly received: Res[] = [];
  /** Protocol rules the server broke, as readable sentences. */
  readonly violations: string[] = [];
  /** Resolves with the gRPC status when the stream ends. */
  readonly ended: Promise<StreamEnd>;
  readonly #call: ClientDuplexStream<Buffer, Buffer>;
  readonly #encode: (r: Req) => Buffer;
  readonly #decode: (b: Buffer) => Res;
  readonly #delta: boolean;
  #read = 0;
  #waiters: Array<() => void> = [];
  #lastNonce = 0n;
  readonly #requestedTypes = new Set<string>();
  /** Per type: the nonce of a response not yet answered with a request carrying it. */
  readonly #unanswered = new Map<string, string>();
  #listeners: Array<(r: Res) => void> = [];

  constructor(
    call: ClientDuplexStream<Buffer, Buffer>,
    encode: (r: Req) => Buffer,
    decode: (b: Buffer) => Res,
    delta: boolean,
  ) {
    this.#call = call;
    this.#encode = encode;
    this.#decode = decode;
    this.#delta = delta;
    this.ended = new Promise((resolve) => {
      call.on('status', (s: { code: number; details: string }) =>
        resolve({ code: s.code, details: s.details }),
      );
      call.on('error', (e: ServiceError) => resolve({ code: e.code, details: e.details }));
    });
    call.on('data', (buf: Buffer) => this.#onData(buf));
  }

  /** Sends a request (its type URL becomes one the server may answer). */
  send(req: Req): void {
    const r = req as { typeUrl?: string; responseNonce?: string };
    if (r.typeUrl !== undefined) {
      this.#requestedTypes.add(r.typeUrl);
      if (r.responseNonce !== undefined && this.#unanswered.get(r.typeUrl) === r.responseNonce) {
        this.#unanswered.delete(r.typeUrl);
      }
    }
    this.#call.write(this.#encode(req));
  }

  /** Sends bytes as they are (for malformed-request tests). */
  sendRaw(bytes: Uint8Array): void {
    this.#call.write(Buffer.from(bytes));
  }

  /** Calls `fn` synchronously for each response as it arrives (for clients that react, like EnvoyLike). */
  onResponse(fn: (r: Res) => void): void {
    this.#listeners.push(fn);
  }

  /** The next response not yet returned by `next`, waiting at most `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<Res> {
    const deadline = Date.now() + timeoutMs;
    while (this.#read >= this.received.length) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no xDS response within ${timeoutMs} ms (got ${this.received.length} so far)`);
      await this.#wait(left);
    }
    const r = this.received[this.#read++];
    if (r === undefined) throw new Error('unreachable: response index out of range');
    return r;
  }

  /** Asserts that no response arrives within `ms` (beyond those already received). */
  async expectQuiet(ms: number): Promise<void> {
    const before = this.received.length;
    await new Promise((r) => setTimeout(r, ms));
    if (this.received.length > before) {
      throw new Error(`expected no xDS response for ${ms} ms, got ${this.received.length - before}`);
    }
  }

  /** Responses received and not yet returned by `next`. */
  get unread(): number {
    return this.received.length - this.#read;
  }

  /** Waits until `predicate` holds, re-checking on every response; at most `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await this.#wait(Math.min(left, 50));
    }
  }

  /** Half-closes: the client will send nothing more. */
  end(): void {
    this.#call.end();
  }

  cancel(): void {
    this.#call.cancel();
  }

  #wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  #onData(buf: Buffer): void {
    let res: Res;
    try {
      res = this.#decode(buf);
    } catch (e) {
      this.violations.push(`undecodable response: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    this.#check(res as SotwResponse | DeltaResponse);
    this.received.push(res);
    for (const fn of this.#listeners) fn(res);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** The per-response protocol rules. */
  #check(res: SotwResponse | DeltaResponse): void {
    const v = (msg: string): void => {
      this.violations.push(`response nonce ${res.nonce} (${res.typeUrl}): ${msg}`);
    };
    if (!/^\d+$/.test(res.nonce)) v('nonce is not a decimal counter');
    else {
      const n = BigInt(res.nonce);
      if (n <= this.#lastNonce) v(`nonce does not increase (previous ${this.#lastNonce})`);
      this.#lastNonce = n;
    }
    if (!this.#requestedTypes.has(res.typeUrl)) v('type was never requested');
    const version = 'versionInfo' in res ? res.versionInfo : res.systemVersionInfo;
    if (version === '') v('version not set');
    const names = new Set<string>();
    for (const r of res.resources) {
      if (r.typeUrl !== res.typeUrl) v(`resource ${r.name} has type ${r.typeUrl}`);
      if (names.has(r.name)) v(`resource ${r.name} sent twice`);
      names.add(r.name);
      if (this.#delta && (r.version ?? '') === '') v(`delta resource ${r.name} has no version`);
    }
    if ('removed' in res) for (const n of res.removed) if (names.has(n)) v(`${n} both updated and removed`);
    const open = this.#unanswered.get(res.typeUrl);
    if (open !== undefined) v(`sent while response ${open} of the same type is unanswered`);
    this.#unanswered.set(res.typeUrl, res.nonce);
  }
}

// ---- encoding and decoding ------------------------------------------------------------------------------

function nodeMessage(node: TestNode | undefined): Record<string, unknown> | undefined {
  if (node === undefined) return undefined;
  return { id: node.id, cluster: node.cluster ?? 'test', userAgentName: node.userAgentName ?? 'skein-test' };
}

function errorDetailMessage(e: ErrorDetailInit | undefined): Record<string, unknown> | undefined {
  return e === undefined ? undefined : { code: e.code ?? 3, message: e.message };
}

export function encodeSotwRequest(req: SotwRequestInit): Buffer {
  const type = messageType(`${DISCOVERY}.DiscoveryRequest`);
  const obj = {
    versionInfo: req.versionInfo ?? '',
    node: nodeMessage(req.node),
    resourceNames: [...(req.resourceNames ?? [])],
    typeUrl: req.typeUrl,
    responseNonce: req.responseNonce ?? '',
    errorDetail: errorDetailMessage(req.errorDetail),
  };
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

export function encodeDeltaRequest(req: DeltaRequestInit): Buffer {
  const type = messageType(`${DISCOVERY}.DeltaDiscoveryRequest`);
  const obj = {
    node: nodeMessage(req.node),
    typeUrl: req.typeUrl,
    resourceNamesSubscribe: [...(req.subscribe ?? [])],
    resourceNamesUnsubscribe: [...(req.unsubscribe ?? [])],
    initialResourceVersions: { ...(req.initialResourceVersions ?? {}) },
    responseNonce: req.responseNonce ?? '',
    errorDetail: errorDetailMessage(req.errorDetail),
  };
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

export function decodeSotwResponse(raw: Buffer): SotwResponse {
  const type = messageType(`${DISCOVERY}.DiscoveryResponse`);
  const m = type.toObject(type.decode(raw), { defaults: true, longs: Number }) as {
    versionInfo: string;
    typeUrl: string;
    nonce: string;
    controlPlane?: { identifier: string };
    resources: unknown[];
  };
  const anys = lengthDelimited(raw, 2);
  if (anys.length !== m.resources.length) {
    throw new Error(`wire reader found ${anys.length} resources, protobufjs ${m.resources.length}`);
  }
  return {
    versionInfo: m.versionInfo,
    typeUrl: m.typeUrl,
    nonce: m.nonce,
    controlPlane: m.controlPlane?.identifier,
    resources: anys.map((any) => received(any, undefined)),
    raw,
  };
}

export function decodeDeltaResponse(raw: Buffer): DeltaResponse {
  const type = messageType(`${DISCOVERY}.DeltaDiscoveryResponse`);
  const m = type.toObject(type.decode(raw), { defaults: true, longs: Number }) as {
    systemVersionInfo: string;
    typeUrl: string;
    nonce: string;
    removedResources: string[];
    resources: Array<{ name: string; version: string }>;
  };
  const resources = lengthDelimited(raw, 2).map((resourceBytes, i) => {
    const [any] = lengthDelimited(resourceBytes, 2);
    const meta = m.resources[i];
    if (any === undefined || meta === undefined) throw new Error('delta Resource without a resource');
    const r = received(any, meta.version);
    if (r.name !== meta.name)
      throw new Error(`Resource.name ${meta.name} but the resource is named ${r.name}`);
    return r;
  });
  return {
    systemVersionInfo: m.systemVersionInfo,
    typeUrl: m.typeUrl,
    nonce: m.nonce,
    removed: m.removedResources,
    resources,
    raw,
  };
}

function received(any: Buffer, version: string | undefined): ReceivedResource {
  const { typeUrl, message } = decodeAny(any);
  return {
    name: resourceName(typeUrl, message),
    typeUrl,
    any,
    message,
    ...(version === undefined ? {} : { version }),
  };
}

export function resourceName(typeUrl: string, message: Record<string, unknown>): string {
  const n = typeUrl === TypeUrl.ClusterLoadAssignment ? message['clusterName'] : message['name'];
  return typeof n === 'string' ? n : '';
}

/** The payloads of every occurrence of length-delimited top-level `field`, read straight off the wire. */
export function lengthDelimited(buf: Buffer, field: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  const varint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      const b = buf[at++];
      if (b === undefined) throw new Error('truncated varint');
      n += (b & 0x7f) * mul;
      if (b < 0x80) return n;
      mul *= 128;
    }
  };
  while (at < buf.length) {
    const tag = varint();
    const wire = tag & 7;
    const f = Math.floor(tag / 8);
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint();
      if (f === field) out.push(buf.subarray(at, at + len));
      at += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  if (at !== buf.length) throw new Error('message overruns its buffer');
  return out;
}

// ---- an Envoy-like ADS client ----------------------------------------------------------------------------

export interface EnvoyLikeOptions {
  readonly node: TestNode;
  /** Send a new subscription (EDS after CDS, RDS/SDS after LDS) before the ACK that caused it (Envoy's
   * usual order) or after it. Both orders happen; the server must handle either. */
  readonly subscribeBeforeAck?: boolean;
  /** Return an error message to NACK a response instead of applying it. */
  readonly nack?: (typeUrl: string, resources: readonly ReceivedResource[]) => string | undefined;
  /** Delta: subscribe to wildcard with `*` rather than with an empty first request. */
  readonly explicitWildcard?: boolean;
}

interface Held {
  readonly any: Buffer;
  readonly message: Record<string, unknown>;
}

/** Every type, keyed by URL. */
const followTypes = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Secret,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
] as const;

/**
 * Behaves like Envoy on one ADS stream, and checks make-before-break on every response:
 * - a RouteConfiguration (or Listener) only names clusters the client has been sent and ACKed, with their
 *   endpoints;
 * - a Cluster is never removed while a route configuration the client holds points at it, and endpoints
 *   are never removed while a cluster the client holds uses them.
 */
export class EnvoyLike {
  /** What the client runs: per type, name → resource. */
  readonly holds = new Map<string, Map<string, Held>>(followTypes.map((t) => [t, new Map()]));
  /** Make-before-break breaches, as readable sentences. */
  readonly breaches: string[] = [];
  /** Every response in order: type, nonce, names sent, names removed, and whether it was NACKed. */
  readonly log: Array<{
    typeUrl: string;
    nonce: string;
    names: string[];
    removed: readonly string[];
    nacked: boolean;
  }> = [];
  readonly #stream:
    | XdsTestStream<SotwRequestInit, SotwResponse>
    | XdsTestStream<DeltaRequestInit, DeltaResponse>;
  readonly #delta: boolean;
  readonly #options: EnvoyLikeOptions;
  /** Explicit subscriptions for the named types. */
  readonly #subs = new Map<string, Set<string>>();
  /** SotW: per type, the last nonce received and the last version accepted. */
  readonly #nonce = new Map<string, string>();
  readonly #version = new Map<string, string>();
  #first = true;

  private constructor(
    stream: XdsTestStream<SotwRequestInit, SotwResponse> | XdsTestStream<DeltaRequestInit, DeltaResponse>,
    delta: boolean,
    options: EnvoyLikeOptions,
  ) {
    this.#stream = stream;
    this.#delta = delta;
    this.#options = options;
  }

  static sotw(stream: XdsTestStream<SotwRequestInit, SotwResponse>, options: EnvoyLikeOptions): EnvoyLike {
    const e = new EnvoyLike(stream, false, options);
    stream.onResponse((r) => e.#onSotw(stream, r));
    return e;
  }

  static delta(stream: XdsTestStream<DeltaRequestInit, DeltaResponse>, options: EnvoyLikeOptions): EnvoyLike {
    const e = new EnvoyLike(stream, true, options);
    stream.onResponse((r) => e.#onDelta(stream, r));
    return e;
  }

  get stream():
    | XdsTestStream<SotwRequestInit, SotwResponse>
    | XdsTestStream<DeltaRequestInit, DeltaResponse> {
    return this.#stream;
  }

  /** Subscribes to CDS and LDS by wildcard, as Envoy does at startup. */
  start(): void {
    for (const t of [TypeUrl.Cluster, TypeUrl.Listener]) {
      if (this.#delta) {
        this.#sendDelta({ typeUrl: t, subscribe: this.#options.explicitWildcard ? ['*'] : [] });
      } else {
        this.#sendSotw({ typeUrl: t, resourceNames: [] });
      }
    }
  }

  /** Held names and Any bytes of one type, for comparing with a snapshot. */
  held(typeUrl: string): Map<string, Buffer> {
    return new Map([...(this.holds.get(typeUrl) ?? [])].map(([n, h]) => [n, h.any]));
  }

  #node(): TestNode | undefined {
    if (!this.#first) return undefined;
    this.#first = false;
    return this.#options.node;
  }

  #sendSotw(req: SotwRequestInit): void {
    const node = this.#node();
    (this.#stream as XdsTestStream<SotwRequestInit, SotwResponse>).send(
      node === undefined ? req : { ...req, node },
    );
  }

  #sendDelta(req: DeltaRequestInit): void {
    const node = this.#node();
    (this.#stream as XdsTestStream<DeltaRequestInit, DeltaResponse>).send(
      node === undefined ? req : { ...req, node },
    );
  }

  #onSotw(_s: XdsTestStream<SotwRequestInit, SotwResponse>, res: SotwResponse): void {
    const t = res.typeUrl;
    this.#nonce.set(t, res.nonce);
    const reason = this.#options.nack?.(t, res.resources);
    const names = res.resources.map((r) => r.name);
    if (reason !== undefined) {
      this.log.push({ typeUrl: t, nonce: res.nonce, names, removed: [], nacked: true });
      this.#sendSotw({
        typeUrl: t,
        versionInfo: this.#version.get(t) ?? '',
        responseNonce: res.nonce,
        resourceNames: this.#sotwNames(t),
        errorDetail: { message: reason },
      });
      return;
    }
    const held = this.holds.get(t) ?? new Map<string, Held>();
    const next = new Map<string, Held>();
    // LDS and CDS responses are the full set; other types only update what they carry.
    if (t !== TypeUrl.Listener && t !== TypeUrl.Cluster) for (const [n, h] of held) next.set(n, h);
    for (const r of this.#wanted(t, res.resources)) next.set(r.name, { any: r.any, message: r.message });
    const removed = [...held.keys()].filter((n) => !next.has(n));
    this.log.push({ typeUrl: t, nonce: res.nonce, names, removed, nacked: false });
    this.#checkAndApply(t, next, removed, res.resources);
    this.#version.set(t, res.versionInfo);
    const ack = (): void =>
      this.#sendSotw({
        typeUrl: t,
        versionInfo: res.versionInfo,
        responseNonce: res.nonce,
        resourceNames: this.#sotwNames(t),
      });
    this.#follow(t, ack);
  }

  #onDelta(_s: XdsTestStream<DeltaRequestInit, DeltaResponse>, res: DeltaResponse): void {
    const t = res.typeUrl;
    const reason = this.#options.nack?.(t, res.resources);
    const names = res.resources.map((r) => r.name);
    if (reason !== undefined) {
      this.log.push({ typeUrl: t, nonce: res.nonce, names, removed: res.removed, nacked: true });
      this.#sendDelta({ typeUrl: t, responseNonce: res.nonce, errorDetail: { message: reason } });
      return;
    }
    const held = this.holds.get(t) ?? new Map<string, Held>();
    const next = new Map(held);
    for (const r of this.#wanted(t, res.resources)) next.set(r.name, { any: r.any, message: r.message });
    for (const n of res.removed) next.delete(n);
    this.log.push({ typeUrl: t, nonce: res.nonce, names, removed: res.removed, nacked: false });
    this.#checkAndApply(t, next, res.removed, res.resources);
    this.#follow(t, () => this.#sendDelta({ typeUrl: t, responseNonce: res.nonce }));
  }

  /** After a response is applied: subscribe to what it names (EDS, RDS, SDS) and ACK, in either order. */
  #follow(t: string, ack: () => void): void {
    const changes: Array<() => void> = [];
    if (t === TypeUrl.Cluster) {
      changes.push(this.#resubscribe(TypeUrl.ClusterLoadAssignment, this.#edsNames()));
    }
    if (t === TypeUrl.Listener) {
      const { routes, secrets } = this.#listenerNames();
      changes.push(this.#resubscribe(TypeUrl.RouteConfiguration, routes));
      changes.push(this.#resubscribe(TypeUrl.Secret, secrets));
    }
    if (this.#options.subscribeBeforeAck ?? true) {
      for (const c of changes) c();
      ack();
    } else {
      ack();
      for (const c of changes) c();
    }
  }

  /** Returns the request to send (if the subscription changed); drops what is unsubscribed now. */
  #resubscribe(t: string, names: Set<string>): () => void {
    const old = this.#subs.get(t) ?? new Set<string>();
    const added = [...names].filter((n) => !old.has(n)).sort();
    const gone = [...old].filter((n) => !names.has(n)).sort();
    if (added.length === 0 && gone.length === 0) return () => undefined;
    this.#subs.set(t, names);
    const held = this.holds.get(t);
    for (const n of gone) held?.delete(n);
    if (this.#delta) return () => this.#sendDelta({ typeUrl: t, subscribe: added, unsubscribe: gone });
    return () =>
      this.#sendSotw({
        typeUrl: t,
        resourceNames: [...names].sort(),
        versionInfo: this.#version.get(t) ?? '',
        responseNonce: this.#nonce.get(t) ?? '',
      });
  }

  /** Like Envoy, keep only what is subscribed: a resource of a named type nobody watches is dropped. */
  #wanted(t: string, resources: readonly ReceivedResource[]): ReceivedResource[] {
    if (t === TypeUrl.Listener || t === TypeUrl.Cluster) return [...resources];
    const subs = this.#subs.get(t) ?? new Set<string>();
    return resources.filter((r) => subs.has(r.name));
  }

  #sotwNames(t: string): string[] {
    if (t === TypeUrl.Listener || t === TypeUrl.Cluster) return [];
    return [...(this.#subs.get(t) ?? [])].sort();
  }

  #edsNames(): Set<string> {
    const out = new Set<string>();
    for (const h of this.holds.get(TypeUrl.Cluster)?.values() ?? []) {
      if (h.message['type'] !== 'EDS') continue;
      const eds = h.message['edsClusterConfig'] as { serviceName?: string } | undefined;
      out.add(eds?.serviceName || String(h.message['name']));
    }
    return out;
  }

  #listenerNames(): { routes: Set<string>; secrets: Set<string> } {
    const routes = new Set<string>();
    const secrets = new Set<string>();
    for (const h of this.holds.get(TypeUrl.Listener)?.values() ?? []) {
      walk(h.message, (key, value) => {
        if (key === 'rds' && isObj(value) && typeof value['routeConfigName'] === 'string') {
          routes.add(value['routeConfigName']);
        }
        if (key === 'tlsCertificateSdsSecretConfigs' && Array.isArray(value)) {
          for (const s of value) if (isObj(s) && typeof s['name'] === 'string') secrets.add(s['name']);
        }
      });
    }
    return { routes, secrets };
  }

  /** Make-before-break checks for one accepted response, then the state change. */
  #checkAndApply(
    t: string,
    next: Map<string, Held>,
    removed: readonly string[],
    sent: readonly ReceivedResource[],
  ) {
    const b = (msg: string): void => {
      this.breaches.push(msg);
    };
    const clusters = this.holds.get(TypeUrl.Cluster) ?? new Map<string, Held>();
    const endpoints = this.holds.get(TypeUrl.ClusterLoadAssignment) ?? new Map<string, Held>();
    if (t === TypeUrl.RouteConfiguration || t === TypeUrl.Listener) {
      for (const r of sent) {
        for (const c of clustersNamed(r.message)) {
          const cluster = clusters.get(c);
          if (cluster === undefined) {
            b(`${r.name} names cluster ${c}, which the client has not been sent and ACKed`);
            continue;
          }
          const service = edsServiceName(cluster.message);
          if (service !== undefined && !endpoints.has(service)) {
            b(`${r.name} names cluster ${c}, whose endpoints ${service} the client does not have`);
          }
        }
      }
    }
    if (t === TypeUrl.Cluster) {
      for (const gone of removed) {
        for (const [rc, h] of this.holds.get(TypeUrl.RouteConfiguration) ?? []) {
          if (clustersNamed(h.message).has(gone))
            b(`cluster ${gone} removed while route configuration ${rc} uses it`);
        }
      }
    }
    if (t === TypeUrl.ClusterLoadAssignment) {
      for (const gone of removed) {
        for (const [c, h] of clusters) {
          if (edsServiceName(h.message) === gone) b(`endpoints ${gone} removed while cluster ${c} uses them`);
        }
      }
    }
    this.holds.set(t, next);
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function walk(v: unknown, fn: (key: string, value: unknown) => void): void {
  if (Array.isArray(v)) for (const x of v) walk(x, fn);
  else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      fn(k, x);
      walk(x, fn);
    }
  }
}

/** Clusters a route configuration or listener sends traffic to (route actions, weighted clusters, TCP proxy). */
export function clustersNamed(message: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  walk(message, (key, value) => {
    if ((key === 'route' || key === 'typedConfig') && isObj(value) && typeof value['cluster'] === 'string') {
      out.add(value['cluster']);
    }
    if (key === 'weightedClusters' && isObj(value) && Array.isArray(value['clusters'])) {
      for (const c of value['clusters']) if (isObj(c) && typeof c['name'] === 'string') out.add(c['name']);
    }
  });
  return out;
}

function edsServiceName(cluster: Record<string, unknown>): string | undefined {
  if (cluster['type'] !== 'EDS') return undefined;
  const eds = cluster['edsClusterConfig'];
  const s = isObj(eds) ? eds['serviceName'] : undefined;
  return typeof s === 'string' && s !== '' ? s : String(cluster['name']);
}
