import { createHash } from 'node:crypto';
import { MessageEncoder, messageType, type ProtoObject, type TypeUrl } from './proto.js';

/** Identifies one resource across types: `${typeUrl} ${name}`. */
export interface ResourceKey {
  readonly typeUrl: TypeUrl;
  readonly name: string;
}

/**
 * What a translator hands over: a resource as a plain object, plus its references.
 * - `deps`: what the client should hold (ACKed) before this resource is sent: a route configuration
 *   needs its clusters and their endpoints, a listener its secrets. This orders sends (make before break).
 *   A dep the client can only get after this resource (Envoy asks for a listener's secrets once it has
 *   the listener) does not hold it back; see depsReady in target.ts.
 * - `children`: what this resource names and the client then subscribes to: a listener's route
 *   configuration, a cluster's endpoints. They cannot be deps (the client asks for them only after it has
 *   the parent), but they count as used.
 * Both keep a resource at the client until nothing it holds refers to it (break after make), and both are
 * checked for existence before a snapshot is published.
 */
export interface ResourceSpec {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  readonly message: ProtoObject;
  readonly deps: readonly ResourceKey[];
  readonly children: readonly ResourceKey[];
}

/** An encoded resource. Immutable; the bytes are shared by every stream that sends it. */
export interface XdsResource {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  /** Content hash of the resource; also its xDS version. */
  readonly version: string;
  /** Encoded `google.protobuf.Any`, ready to splice into a DiscoveryResponse. */
  readonly any: Uint8Array;
  /** Encoded `envoy.service.discovery.v3.Resource` (name, version, resource), for delta responses. */
  readonly deltaResource: Uint8Array;
  readonly deps: readonly ResourceKey[];
  readonly children: readonly ResourceKey[];
  /** The plain object it was encoded from, for `skein translate` and tests. */
  readonly message: ProtoObject;
}

/**
 * Encodes each distinct resource once. The key is a hash of the type, name and content, so an unchanged
 * resource costs a hash on the next build and no encoding; two node groups sharing a cluster share bytes.
 * `sweep()` drops what the last two builds did not use, bounding memory to the live config.
 *
 * Work grows with what changed, not with the config: a spec the translators hand back again (a memo
 * hit: the very same object) is found by identity without hashing, and in a spec that did change the
 * items of its repeated fields that did not (the other routes of a route configuration) cost a lookup
 * each, for their canonical JSON here and for their bytes in the MessageEncoder. Both rest on specs and
 * their messages never being mutated once handed over, which the translators' own memo caches assume.
 */
export class ResourceEncoder {
  #current = new Map<string, XdsResource>();
  #previous = new Map<string, XdsResource>();
  #encodes = 0;
  /** The cache key each spec object hashed to; the entry itself still lives (and is swept) in the maps. */
  readonly #keys = new WeakMap<ResourceSpec, string>();
  /** Canonical JSON of message objects that are items of arrays, by identity (see stableStringify). */
  readonly #canonical = new WeakMap<object, string>();
  readonly #messages = new MessageEncoder();

  /** How many resources were actually encoded (not served from the cache): for benchmarks and tests. */
  get encodeCount(): number {
    return this.#encodes;
  }

  encode(spec: ResourceSpec): XdsResource {
    const known = this.#keys.get(spec);
    const found = known === undefined ? undefined : (this.#current.get(known) ?? this.#previous.get(known));
    if (known !== undefined && found !== undefined) return this.#use(known, found, spec);

    const canonical = stableStringify(spec.message, this.#canonical);
    const version = createHash('sha256')
      .update(spec.typeUrl)
      .update('\0')
      .update(canonical)
      .digest('base64url')
      .slice(0, 22);
    const key = `${spec.typeUrl}\0${spec.name}\0${version}`;
    this.#keys.set(spec, key);
    const r = this.#current.get(key) ?? this.#previous.get(key);
    if (r !== undefined) return this.#use(key, r, spec);

    this.#encodes++;
    const value = this.#messages.message(spec.typeUrl, spec.message);
    const any = { type_url: spec.typeUrl, value };
    const encoded: XdsResource = {
      typeUrl: spec.typeUrl,
      name: spec.name,
      version,
      any: messageType('google.protobuf.Any').encode(any).finish(),
      deltaResource: messageType('envoy.service.discovery.v3.Resource')
        .encode({ name: spec.name, version, resource: any })
        .finish(),
      deps: spec.deps,
      children: spec.children,
      message: spec.message,
    };
    this.#current.set(key, encoded);
    return encoded;
  }

  /** A cache hit: marks it used by this build, with the spec's references. */
  #use(key: string, r: XdsResource, spec: ResourceSpec): XdsResource {
    let out = r;
    if (
      (r.deps !== spec.deps && !sameKeys(r.deps, spec.deps)) ||
      (r.children !== spec.children && !sameKeys(r.children, spec.children))
    ) {
      // Same bytes, different references (possible: refs come from the IR, not the message). Keep bytes.
      out = { ...r, deps: spec.deps, children: spec.children };
    }
    this.#current.set(key, out);
    return out;
  }

  /** Call after each build is published: forgets entries the last two builds did not use. */
  sweep(): void {
    this.#previous = this.#current;
    this.#current = new Map();
  }
}

function sameKeys(a: readonly ResourceKey[], b: readonly ResourceKey[]): boolean {
  return a.length === b.length && a.every((k, i) => k.typeUrl === b[i]?.typeUrl && k.name === b[i]?.name);
}

/**
 * JSON with object keys sorted, so equal content always hashes equal. With `memo`, the JSON of every
 * object that is an item of an array is remembered by identity: arrays are where messages grow, and
 * their unchanged items are the same objects from build to build (see ResourceEncoder).
 */
export function stableStringify(value: unknown, memo?: WeakMap<object, string>): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (value instanceof Uint8Array) return JSON.stringify(Buffer.from(value).toString('base64'));
  if (Array.isArray(value)) {
    const items = value.map((item: unknown) => {
      if (memo === undefined || item === null || typeof item !== 'object') return stableStringify(item, memo);
      let s = memo.get(item);
      if (s === undefined) {
        s = stableStringify(item, memo);
        memo.set(item, s);
      }
      return s;
    });
    return `[${items.join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(obj[k], memo)}`).join(',')}}`;
}
