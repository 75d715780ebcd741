/**
 * Map updates by difference: a map's wanted contents against what it holds, compared as encoded bytes
 * (what the kernel compares), so that only keys whose value changed are written and only keys no longer
 * wanted are deleted. Pure.
 */

import type { Codec } from './codec.js';

export interface EncodedEntry<K, V> {
  readonly key: K;
  readonly value: V;
  /** The encoded key and value, hex. */
  readonly k: string;
  readonly v: string;
}

export interface MapDiff<K, V> {
  /** New keys and keys whose value changed. */
  readonly upserts: readonly EncodedEntry<K, V>[];
  /** Keys no longer wanted. */
  readonly deletes: readonly EncodedEntry<K, V>[];
}

/** Encodes entries by key; a key given twice keeps its last value. */
export function encodeEntries<K, V>(
  entries: Iterable<readonly [K, V]>,
  key: Codec<K>,
  value: Codec<V>,
): Map<string, EncodedEntry<K, V>> {
  const out = new Map<string, EncodedEntry<K, V>>();
  for (const [k, v] of entries) {
    const kh = key.encode(k).toString('hex');
    out.set(kh, { key: k, value: v, k: kh, v: value.encode(v).toString('hex') });
  }
  return out;
}

export function diffMaps<K, V>(
  current: ReadonlyMap<string, EncodedEntry<K, V>>,
  wanted: ReadonlyMap<string, EncodedEntry<K, V>>,
): MapDiff<K, V> {
  const upserts: EncodedEntry<K, V>[] = [];
  const deletes: EncodedEntry<K, V>[] = [];
  for (const [k, e] of wanted) if (current.get(k)?.v !== e.v) upserts.push(e);
  for (const [k, e] of current) if (!wanted.has(k)) deletes.push(e);
  return { upserts, deletes };
}
