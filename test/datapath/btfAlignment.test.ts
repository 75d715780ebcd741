// The TypeScript codecs against the compiled structs (Cilium's alignchecker idea): every struct a codec
// mirrors must have, in the BTF of dist/bpf/lb.bpf.o, the same size and the same members at the same
// offsets with the same sizes; every enum the same values; every map the key and value types the codecs
// were written for; every rodata variable the size the loader writes. No kernel needed, only bpftool.

import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Codec, StructLayout } from '../../src/datapath/codec.js';
import { FlowEnums, FlowEventCodec } from '../../src/datapath/codecs/flow.js';
import { LbEnums, LbExtraStructs, LbMaps, LbRodata } from '../../src/datapath/codecs/lb.js';
import { PolicyEnums, PolicyMaps, PolicyRodata } from '../../src/datapath/codecs/policy.js';
import { bpftool, exec, LB_OBJECT, POLICY_OBJECT, support } from './helpers.js';

interface BtfMember {
  name: string;
  type_id: number;
  bits_offset: number;
  bitfield_size?: number;
}

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: BtfMember[];
  values?: { name: string; val: number }[];
  vars?: { type_id: number; offset: number; size: number }[];
}

class Btf {
  private readonly byId = new Map<number, BtfType>();

  constructor(types: BtfType[]) {
    for (const t of types) this.byId.set(t.id, t);
  }

  type(id: number): BtfType {
    const t = this.byId.get(id);
    if (t === undefined) throw new Error(`no BTF type ${id}`);
    return t;
  }

  named(kind: string, name: string): BtfType {
    const found = [...this.byId.values()].filter((t) => t.kind === kind && t.name === name);
    if (found.length !== 1) throw new Error(`expected one BTF ${kind} named ${name}, found ${found.length}`);
    return found[0] as BtfType;
  }

  /** Follows typedefs and qualifiers (const, volatile) to the type that has a layout. */
  resolve(id: number): BtfType {
    let t = this.type(id);
    while (['TYPEDEF', 'CONST', 'VOLATILE', 'RESTRICT', 'TYPE_TAG'].includes(t.kind))
      t = this.type(t.type_id ?? 0);
    return t;
  }

  sizeOf(id: number): number {
    const t = this.resolve(id);
    if (t.kind === 'ARRAY') return (t.nr_elems ?? 0) * this.sizeOf(t.type_id ?? 0);
    if (t.kind === 'PTR') return 8;
    if (t.size === undefined) throw new Error(`BTF type ${t.id} (${t.kind} ${t.name}) has no size`);
    return t.size;
  }

  /** The C layout of a struct, as the compiler made it. */
  layout(name: string): StructLayout {
    const s = this.named('STRUCT', name);
    return {
      cName: name,
      size: s.size ?? 0,
      fields: (s.members ?? []).map((m) => {
        if (m.bitfield_size !== undefined && m.bitfield_size !== 0)
          throw new Error(`${name}.${m.name} is a bitfield`);
        return { name: m.name, offset: m.bits_offset / 8, size: this.sizeOf(m.type_id) };
      }),
    };
  }
}

/** SKEIN_REASON_LB_NO_BACKENDS -> lbNoBackends */
const camel = (constant: string, prefix: string): string =>
  constant
    .slice(prefix.length)
    .toLowerCase()
    .replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

// Needs the compiled object; where the datapath cannot run, setup does not build it and this skips too.
const built = existsSync(LB_OBJECT);
const suite = built || support.ok ? describe : describe.skip;
const reason =
  built || support.ok ? '' : ` (skipped: ${LB_OBJECT} is not built, and the datapath cannot run here)`;

suite(`codecs match the BTF of dist/bpf/lb.bpf.o${reason}`, () => {
  let btf: Btf;

  beforeAll(async () => {
    const dump = JSON.parse(
      await exec(bpftool(), ['btf', 'dump', 'file', LB_OBJECT, 'format', 'raw', '-j']),
    ) as {
      types: BtfType[];
    };
    btf = new Btf(dump.types);
  });

  const structCodecs: Codec<unknown>[] = [
    ...Object.values(LbMaps).flatMap((m) => [m.key as Codec<unknown>, m.value as Codec<unknown>]),
    ...LbExtraStructs.map((c) => c as Codec<unknown>),
    FlowEventCodec as Codec<unknown>,
  ].filter((c) => c.layout !== undefined);

  it.each(structCodecs.map((c) => [c.name, c] as const))(
    '%s has the layout of its C struct',
    (_name, codec) => {
      const layout = codec.layout as StructLayout;
      expect(layout).toEqual(btf.layout(layout.cName));
      expect(codec.size).toBe(layout.size);
    },
  );

  it.each(Object.entries(LbMaps))('map %s has the key and value types its codecs mirror', (_k, m) => {
    // A BTF map definition is a struct whose `key` and `value` members point at the types.
    const def = btf.resolve(btf.named('VAR', m.name).type_id ?? 0);
    const member = (name: string) => {
      const ptr = btf.type(def.members?.find((x) => x.name === name)?.type_id ?? 0);
      return btf.resolve(ptr.type_id ?? 0);
    };
    for (const [which, codec] of [
      ['key', m.key],
      ['value', m.value],
    ] as const) {
      const t = member(which);
      if (codec.layout === undefined) {
        expect(t.kind).toBe('INT');
      } else {
        expect(`${t.kind} ${t.name}`).toBe(`STRUCT ${codec.layout.cName}`);
      }
      expect(btf.sizeOf(t.id)).toBe(codec.size);
    }
  });

  it.each([...FlowEnums, ...LbEnums].map((e) => [e.cName, e] as const))(
    'enum %s has the values of its table',
    (_n, e) => {
      const t = btf.named('ENUM', e.cName);
      const fromC = Object.fromEntries((t.values ?? []).map((v) => [camel(v.name, e.prefix), v.val]));
      expect(fromC).toEqual(e.values);
    },
  );

  it('rodata variables have the sizes the loader writes', () => {
    const sec = btf.named('DATASEC', '.rodata');
    const vars = Object.fromEntries((sec.vars ?? []).map((v) => [btf.type(v.type_id).name, v.size]));
    for (const v of Object.values(LbRodata)) expect(vars[v.name], v.name).toBe(v.size);
  });
});

// The policy family's object: its maps' structs (skein_policy.h), its enums, its rodata, and the flow
// event it writes too (the same header, compiled again).
const policyBuilt = existsSync(POLICY_OBJECT);
const policySuite = policyBuilt || support.ok ? describe : describe.skip;
const policyReason =
  policyBuilt || support.ok
    ? ''
    : ` (skipped: ${POLICY_OBJECT} is not built, and the datapath cannot run here)`;

policySuite(`policy codecs match the BTF of dist/bpf/policy.bpf.o${policyReason}`, () => {
  let btf: Btf;

  beforeAll(async () => {
    const dump = JSON.parse(
      await exec(bpftool(), ['btf', 'dump', 'file', POLICY_OBJECT, 'format', 'raw', '-j']),
    ) as { types: BtfType[] };
    btf = new Btf(dump.types);
  });

  const structCodecs: Codec<unknown>[] = [
    ...Object.values(PolicyMaps).flatMap((m) => [m.key as Codec<unknown>, m.value as Codec<unknown>]),
    FlowEventCodec as Codec<unknown>,
  ].filter((c) => c.layout !== undefined);

  it.each(structCodecs.map((c) => [c.name, c] as const))(
    '%s has the layout of its C struct',
    (_name, codec) => {
      const layout = codec.layout as StructLayout;
      expect(layout).toEqual(btf.layout(layout.cName));
      expect(codec.size).toBe(layout.size);
    },
  );

  it.each(Object.entries(PolicyMaps))('map %s has the key and value types its codecs mirror', (_k, m) => {
    const def = btf.resolve(btf.named('VAR', m.name).type_id ?? 0);
    const member = (name: string) => {
      const ptr = btf.type(def.members?.find((x) => x.name === name)?.type_id ?? 0);
      return btf.resolve(ptr.type_id ?? 0);
    };
    for (const [which, codec] of [
      ['key', m.key],
      ['value', m.value],
    ] as const) {
      const t = member(which);
      if (codec.layout === undefined) expect(t.kind).toBe('INT');
      else expect(`${t.kind} ${t.name}`).toBe(`STRUCT ${codec.layout.cName}`);
      expect(btf.sizeOf(t.id)).toBe(codec.size);
    }
  });

  it.each([...FlowEnums, ...PolicyEnums].map((e) => [e.cName, e] as const))(
    'enum %s has the values of its table',
    (_n, e) => {
      const t = btf.named('ENUM', e.cName);
      const fromC = Object.fromEntries((t.values ?? []).map((v) => [camel(v.name, e.prefix), v.val]));
      expect(fromC).toEqual(e.values);
    },
  );

  it('rodata variables have the sizes the loader writes', () => {
    const sec = btf.named('DATASEC', '.rodata');
    const vars = Object.fromEntries((sec.vars ?? []).map((v) => [btf.type(v.type_id).name, v.size]));
    for (const v of Object.values(PolicyRodata)) expect(vars[v.name], v.name).toBe(v.size);
  });
});
