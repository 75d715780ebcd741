/**
 * A per-CPU BPF map (PERCPU_ARRAY, PERCPU_HASH) seen through codecs: a lookup returns one value per
 * possible CPU, which the kernel lays out back to back, each rounded up to 8 bytes. Counters live in such
 * maps so that no two CPUs write the same cache line; readers add them up.
 */

import type { NativeMap, NativeMapInfo } from './addon.js';
import type { Codec } from './codec.js';
import { DatapathError, DatapathErrorCode, native } from './errors.js';

export class PerCpuMap<K, V> {
  readonly name: string;
  readonly info: NativeMapInfo;
  /** How many values a lookup returns: the possible CPUs. */
  readonly cpus: number;
  private readonly slot: number;

  /** Takes ownership of `map`; throws SKEIN_BPF_MAP_TYPE_MISMATCH or _SIZE_MISMATCH (and closes it). */
  constructor(
    private readonly map: NativeMap,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
  ) {
    this.info = native(() => map.info());
    this.name = this.info.name;
    this.slot = Math.ceil(this.info.valueSize / 8) * 8;
    this.cpus = this.slot === 0 ? 0 : this.info.valueBufferSize / this.slot;
    try {
      if (this.info.valueBufferSize === this.info.valueSize && !this.info.type.startsWith('percpu')) {
        throw new DatapathError(
          DatapathErrorCode.MapTypeMismatch,
          `map ${this.name} is a ${this.info.type} map, not a per-CPU one: open it as a TypedMap`,
        );
      }
      if (this.info.keySize !== key.size) {
        throw new DatapathError(
          DatapathErrorCode.MapSizeMismatch,
          `map ${this.name} has key size ${this.info.keySize}, codec ${key.name} encodes ${key.size}`,
        );
      }
      if (this.info.valueSize !== value.size) {
        throw new DatapathError(
          DatapathErrorCode.MapSizeMismatch,
          `map ${this.name} has value size ${this.info.valueSize}, codec ${value.name} encodes ${value.size}`,
        );
      }
    } catch (err) {
      map.close();
      throw err;
    }
  }

  /** The value on each possible CPU, or undefined if the key is not there (hashes only). */
  get(key: K): V[] | undefined {
    const bytes = native(() => this.map.lookup(this.key.encode(key)));
    if (bytes === undefined) return undefined;
    const out: V[] = [];
    for (let cpu = 0; cpu < this.cpus; cpu++) {
      out.push(this.value.decode(bytes.subarray(cpu * this.slot, cpu * this.slot + this.value.size)));
    }
    return out;
  }

  /** Sets the same value on every CPU (zeroing counters, say). */
  setAll(key: K, value: V): void {
    const one = this.value.encode(value);
    const bytes = Buffer.alloc(this.slot * this.cpus);
    for (let cpu = 0; cpu < this.cpus; cpu++) one.copy(bytes, cpu * this.slot);
    const k = this.key.encode(key);
    native(() => this.map.update(k, bytes, 0));
  }

  close(): void {
    this.map.close();
  }
}
