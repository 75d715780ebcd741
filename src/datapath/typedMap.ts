/**
 * A BPF map seen through a key codec and a value codec. Opening checks the codecs against the map the
 * kernel actually has (its key_size and value_size), so a struct that changed on one side only fails
 * at once, with both sizes in the message, instead of corrupting entries.
 */

import type { NativeMap, NativeMapInfo } from './addon.js';
import type { Codec } from './codec.js';
import { DatapathError, DatapathErrorCode, native } from './errors.js';

/** BPF_ANY, BPF_NOEXIST, BPF_EXIST. */
export type UpdateMode = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Readonly<Record<UpdateMode, number>> = { any: 0, noexist: 1, exist: 2 };

/** Errnos that mean "this map type has no batch operations" (EINVAL, EOPNOTSUPP, ENOTSUPP). */
const NO_BATCH = new Set([22, 95, 524]);

export class TypedMap<K, V> {
  readonly name: string;
  /** What the kernel says about the map (sizes, type, id, max_entries). */
  readonly info: NativeMapInfo;

  /** Takes ownership of `map`; throws SKEIN_BPF_MAP_SIZE_MISMATCH (and closes it) if the codecs do not fit. */
  constructor(
    private readonly map: NativeMap,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
  ) {
    this.info = native(() => map.info());
    this.name = this.info.name;
    try {
      checkCodecs(this.info, key, value);
    } catch (err) {
      map.close();
      throw err;
    }
  }

  /** The value for `key`, or undefined. */
  get(key: K): V | undefined {
    const bytes = native(() => this.map.lookup(this.key.encode(key)));
    return bytes === undefined ? undefined : this.value.decode(bytes);
  }

  has(key: K): boolean {
    return native(() => this.map.lookup(this.key.encode(key))) !== undefined;
  }

  /** Inserts or replaces (`mode` 'noexist': insert only, 'exist': replace only). */
  set(key: K, value: V, mode: UpdateMode = 'any'): void {
    const k = this.key.encode(key);
    const v = this.value.encode(value);
    native(() => this.map.update(k, v, UPDATE_FLAGS[mode]));
  }

  /** Removes `key`; false if it was not there. */
  delete(key: K): boolean {
    const k = this.key.encode(key);
    return native(() => this.map.delete(k));
  }

  /** Every key, one syscall each (get_next_key). A hash map changed meanwhile may repeat or skip keys. */
  *keys(): Generator<K> {
    let prev: Buffer | undefined;
    for (;;) {
      const cur = prev;
      const next = native(() => this.map.nextKey(cur));
      if (next === undefined) return;
      yield this.key.decode(next);
      prev = next;
    }
  }

  /** Every entry, read in batches where the kernel supports it (one key at a time otherwise). */
  entries(): [K, V][] {
    const out: [K, V][] = [];
    const { keySize, valueSize } = this.info;
    const batch = Math.max(1, Math.min(this.info.maxEntries, 1024));
    let cursor: Buffer | undefined;
    try {
      for (;;) {
        const c = cursor;
        const r = native(() => this.map.lookupBatch(batch, c));
        for (let i = 0; i < r.count; i++) {
          out.push([
            this.key.decode(r.keys.subarray(i * keySize, (i + 1) * keySize)),
            this.value.decode(r.values.subarray(i * valueSize, (i + 1) * valueSize)),
          ]);
        }
        if (r.cursor === undefined) return out;
        cursor = r.cursor;
      }
    } catch (err) {
      if (
        !(err instanceof DatapathError) ||
        err.errno === undefined ||
        !NO_BATCH.has(err.errno) ||
        out.length > 0
      ) {
        throw err;
      }
    }
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v !== undefined) out.push([k, v]);
    }
    return out;
  }

  /** Writes many entries in one syscall (BPF_MAP_UPDATE_BATCH); returns how many were written. */
  setMany(entries: Iterable<readonly [K, V]>, mode: UpdateMode = 'any'): number {
    const keys: Buffer[] = [];
    const values: Buffer[] = [];
    for (const [k, v] of entries) {
      keys.push(this.key.encode(k));
      values.push(this.value.encode(v));
    }
    if (keys.length === 0) return 0;
    return native(() => this.map.updateBatch(Buffer.concat(keys), Buffer.concat(values), UPDATE_FLAGS[mode]));
  }

  /** Deletes many keys in one syscall (BPF_MAP_DELETE_BATCH); every key must exist. */
  deleteMany(keys: Iterable<K>): number {
    const bytes = [...keys].map((k) => this.key.encode(k));
    if (bytes.length === 0) return 0;
    return native(() => this.map.deleteBatch(Buffer.concat(bytes)));
  }

  /** Pins the map at `path` (on bpffs): it then outlives this process. */
  pin(path: string): void {
    native(() => this.map.pin(path));
  }

  /** Closes this handle (the map lives on while a program, a pin or another handle holds it). */
  close(): void {
    this.map.close();
  }
}

/** Throws SKEIN_BPF_MAP_TYPE_MISMATCH or SKEIN_BPF_MAP_SIZE_MISMATCH unless the codecs fit the map. */
export function checkCodecs(info: NativeMapInfo, key: Codec<unknown>, value: Codec<unknown>): void {
  if (info.keySize === 0) {
    throw new DatapathError(
      DatapathErrorCode.MapTypeMismatch,
      `map ${info.name} is a ${info.type} map without keys: open it as a ring buffer, not with codecs`,
    );
  }
  if (info.valueBufferSize !== info.valueSize) {
    throw new DatapathError(
      DatapathErrorCode.MapTypeMismatch,
      `map ${info.name} is a per-CPU ${info.type} map, which TypedMap does not decode yet`,
    );
  }
  if (info.keySize !== key.size) {
    throw new DatapathError(
      DatapathErrorCode.MapSizeMismatch,
      `map ${info.name} has key size ${info.keySize}, codec ${key.name} encodes ${key.size}`,
    );
  }
  if (info.valueSize !== value.size) {
    throw new DatapathError(
      DatapathErrorCode.MapSizeMismatch,
      `map ${info.name} has value size ${info.valueSize}, codec ${value.name} encodes ${value.size}`,
    );
  }
}
