/**
 * Codecs: typed values to and from the bytes of a BPF map key, map value or ring buffer record.
 *
 * A struct codec is declared field by field in the order of the C struct, and lays itself out with the
 * C rules (each field at the next multiple of its alignment, the size rounded up to the largest
 * alignment), so it reads like the header it mirrors. test/datapath/btfAlignment.test.ts compares every
 * layout with the BTF of the compiled object: a field that moves in C fails that test, not production.
 *
 * Numbers are in host byte order like the BPF program sees them, except ports and addresses, which the
 * datapath keeps in network byte order. Padding is written as zero (hash keys compare every byte).
 */

import { isIPv4, isIPv6 } from 'node:net';
import os from 'node:os';

export interface Codec<T> {
  /** For messages: `ServiceKey`. */
  readonly name: string;
  /** Encoded size in bytes. */
  readonly size: number;
  encode(value: T): Buffer;
  decode(bytes: Buffer): T;
  /** The C layout, for struct codecs (the alignment test reads it). */
  readonly layout?: StructLayout;
}

export interface FieldLayout {
  /** The C member name. */
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

export interface StructLayout {
  /** The C struct name, as in BTF (`skein_lb_svc_key`). */
  readonly cName: string;
  readonly size: number;
  readonly fields: readonly FieldLayout[];
}

/** How one field is stored: its size, C alignment and byte conversion. */
export interface FieldType<V> {
  readonly size: number;
  readonly align: number;
  write(buf: Buffer, offset: number, value: V): void;
  read(buf: Buffer, offset: number): V;
}

const LE = os.endianness() === 'LE';

function unsigned(bits: 8 | 16 | 32): FieldType<number> {
  const max = 2 ** bits - 1;
  const check = (v: number): number => {
    if (!Number.isInteger(v) || v < 0 || v > max) {
      throw new RangeError(`Cannot encode ${v} as a u${bits}: it must be an integer in 0..${max}`);
    }
    return v;
  };
  switch (bits) {
    case 8:
      return {
        size: 1,
        align: 1,
        write: (b, o, v) => b.writeUInt8(check(v), o),
        read: (b, o) => b.readUInt8(o),
      };
    case 16:
      return LE
        ? {
            size: 2,
            align: 2,
            write: (b, o, v) => b.writeUInt16LE(check(v), o),
            read: (b, o) => b.readUInt16LE(o),
          }
        : {
            size: 2,
            align: 2,
            write: (b, o, v) => b.writeUInt16BE(check(v), o),
            read: (b, o) => b.readUInt16BE(o),
          };
    case 32:
      return LE
        ? {
            size: 4,
            align: 4,
            write: (b, o, v) => b.writeUInt32LE(check(v), o),
            read: (b, o) => b.readUInt32LE(o),
          }
        : {
            size: 4,
            align: 4,
            write: (b, o, v) => b.writeUInt32BE(check(v), o),
            read: (b, o) => b.readUInt32BE(o),
          };
  }
}

/** `__u8`, `__u16`, `__u32` in host byte order. */
export const u8 = unsigned(8);
export const u16 = unsigned(16);
export const u32 = unsigned(32);

/** `__u64` in host byte order, as a bigint (socket cookies, timestamps). */
export const u64: FieldType<bigint> = {
  size: 8,
  align: 8,
  write: (b, o, v) => {
    if (v < 0n || v > 0xffff_ffff_ffff_ffffn)
      throw new RangeError(`Cannot encode ${v} as a u64: it is out of range`);
    if (LE) b.writeBigUInt64LE(v, o);
    else b.writeBigUInt64BE(v, o);
  },
  read: (b, o) => (LE ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)),
};

/** A port: `__u16` in network byte order, as the number 1..65535 (0 where the datapath has none). */
export const port: FieldType<number> = {
  size: 2,
  align: 2,
  write: (b, o, v) => {
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new RangeError(`Cannot encode ${v} as a port`);
    b.writeUInt16BE(v, o);
  },
  read: (b, o) => b.readUInt16BE(o),
};

// --- IP addresses ----------------------------------------------------------------------------------

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

function writeIPv4(buf: Buffer, offset: number, address: string): void {
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) buf[offset + i] = Number(parts[i]);
}

function parseIPv6(address: string): Buffer {
  const out = Buffer.alloc(16);
  let text = address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted IPv4 (::ffff:10.0.0.1) stands for the last two groups.
  let tail: Buffer | undefined;
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tail = Buffer.alloc(4);
    writeIPv4(tail, 0, text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const before = groups(head);
  const after = rest === undefined ? [] : groups(rest);
  const all = [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
  all.forEach((g, i) => {
    out.writeUInt16BE(g, i * 2);
  });
  if (tail !== undefined) tail.copy(out, 12);
  return out;
}

/** The 16 bytes the datapath uses for an address: IPv6 as is, IPv4 as ::ffff:a.b.c.d. */
export function encodeAddress(address: string): Buffer {
  if (isIPv4(address)) {
    const out = Buffer.alloc(16);
    V4_MAPPED_PREFIX.copy(out, 0);
    writeIPv4(out, 12, address);
    return out;
  }
  if (isIPv6(address)) return parseIPv6(address);
  throw new RangeError(
    `Cannot encode ${JSON.stringify(address)} as an address: it is not an IPv4 or IPv6 address`,
  );
}

/** The inverse: dotted IPv4 for mapped addresses, else RFC 5952 IPv6 (lower case, longest zero run as ::). */
export function decodeAddress(bytes: Buffer, offset = 0): string {
  if (bytes.subarray(offset, offset + 12).equals(V4_MAPPED_PREFIX)) {
    return Array.from(bytes.subarray(offset + 12, offset + 16)).join('.');
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(bytes.readUInt16BE(offset + i * 2));
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/** `struct skein_addr`: 16 bytes, network byte order, IPv4 mapped into IPv6. */
export const address: FieldType<string> = {
  size: 16,
  align: 4,
  write: (b, o, v) => {
    encodeAddress(v).copy(b, o);
  },
  read: (b, o) => decodeAddress(b, o),
};

/** A number stored as a small integer, shown as one of a fixed set of names (protocols, enums). */
export function named<N extends string>(
  base: FieldType<number>,
  values: Readonly<Record<N, number>>,
): FieldType<N> {
  const byValue = new Map<number, N>();
  for (const [k, v] of Object.entries(values) as [N, number][]) byValue.set(v, k);
  return {
    size: base.size,
    align: base.align,
    write: (b, o, v) => {
      const n = values[v];
      if (n === undefined)
        throw new RangeError(
          `Cannot encode ${JSON.stringify(v)}: it is not one of ${[...byValue.values()].join(', ')}`,
        );
      base.write(b, o, n);
    },
    read: (b, o) => {
      const n = base.read(b, o);
      const name = byValue.get(n);
      if (name === undefined)
        throw new RangeError(`Cannot decode ${n}: it is not one of ${[...byValue.keys()].join(', ')}`);
      return name;
    },
  };
}

// --- structs ---------------------------------------------------------------------------------------

interface BuiltField<T> {
  readonly layout: FieldLayout;
  readonly prop: keyof T | undefined;
  readonly type: FieldType<unknown> | undefined;
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

/** Builds a struct codec field by field, in the C struct's order. See the module comment. */
export class StructBuilder<T extends object> {
  private readonly fields: BuiltField<T>[] = [];
  private offset = 0;
  private align = 1;

  constructor(
    private readonly name: string,
    private readonly cName: string,
  ) {}

  /** A field: `prop` of the TypeScript value is the C member `cField`. */
  field<K extends keyof T>(prop: K, cField: string, type: FieldType<T[K]>): this {
    this.place(cField, type.size, type.align, prop, type as FieldType<unknown>);
    return this;
  }

  /** A padding member (`pad0`): written as zeros, not decoded. */
  pad(cField: string, size: number, align = 1): this {
    this.place(cField, size, align, undefined, undefined);
    return this;
  }

  private place(
    cField: string,
    size: number,
    align: number,
    prop: keyof T | undefined,
    type: FieldType<unknown> | undefined,
  ) {
    const offset = alignUp(this.offset, align);
    this.fields.push({ layout: { name: cField, offset, size }, prop, type });
    this.offset = offset + size;
    this.align = Math.max(this.align, align);
  }

  build(): Codec<T> & { readonly layout: StructLayout } {
    const size = alignUp(this.offset, this.align);
    const fields = [...this.fields];
    const name = this.name;
    return {
      name,
      size,
      layout: { cName: this.cName, size, fields: fields.map((f) => f.layout) },
      encode(value: T): Buffer {
        const buf = Buffer.alloc(size);
        for (const f of fields) {
          if (f.prop === undefined || f.type === undefined) continue;
          const v = value[f.prop];
          if (v === undefined) throw new RangeError(`Cannot encode ${name}: ${String(f.prop)} is missing`);
          f.type.write(buf, f.layout.offset, v);
        }
        return buf;
      },
      decode(bytes: Buffer): T {
        if (bytes.length !== size) {
          throw new RangeError(`Cannot decode ${name}: it has ${size} bytes, the buffer ${bytes.length}`);
        }
        const out: Record<PropertyKey, unknown> = {};
        for (const f of fields) {
          if (f.prop === undefined || f.type === undefined) continue;
          out[f.prop] = f.type.read(bytes, f.layout.offset);
        }
        return out as T;
      },
    };
  }
}

export function struct<T extends object>(name: string, cName: string): StructBuilder<T> {
  return new StructBuilder<T>(name, cName);
}

/** A codec for a bare scalar key or value (`__u32` backend ids). */
export function scalar<V>(name: string, type: FieldType<V>): Codec<V> {
  return {
    name,
    size: type.size,
    encode(value: V): Buffer {
      const buf = Buffer.alloc(type.size);
      type.write(buf, 0, value);
      return buf;
    },
    decode(bytes: Buffer): V {
      if (bytes.length !== type.size) {
        throw new RangeError(`Cannot decode ${name}: it has ${type.size} bytes, the buffer ${bytes.length}`);
      }
      return type.read(bytes, 0);
    },
  };
}
