// The IR → map-writes planner (pure): only what changed is written, in the phases that keep connect()
// working, and bad or oversized input keeps its last good entries. The same behaviour through the kernel
// is in lbReconcile.e2e.test.ts.

import { describe, expect, it } from 'vitest';
import { ServiceFlag } from '../../src/datapath/codecs/lb.js';
import { serviceTag } from '../../src/datapath/lbHash.js';
import { emptyLbState, type LbPlan, type LbState, plan } from '../../src/datapath/lbPlan.js';
import type { LbBackendIr, LbServiceIr } from '../../src/model/serviceLb.js';

const be = (last: number, state: LbBackendIr['state'] = 'active'): LbBackendIr => ({
  address: `10.1.0.${last}`,
  port: 8080,
  state,
});
const web: LbServiceIr = {
  name: 'default/web/http',
  address: '10.96.0.10',
  port: 80,
  protocol: 'TCP',
  algorithm: 'random',
  backends: [be(1), be(2)],
};
const api: LbServiceIr = {
  name: 'default/api/grpc',
  address: '10.96.0.11',
  port: 9000,
  protocol: 'TCP',
  algorithm: 'maglev',
  backends: [be(2), be(3), be(4)],
};
const M = 251;

const writes = (p: LbPlan) => ({
  backends: p.backendWrites.length,
  slots: p.slotWrites.length,
  members: p.memberWrites.length,
  services: p.serviceWrites.length,
  serviceDeletes: p.serviceDeletes.length,
  slotDeletes: p.slotDeletes.length,
  memberDeletes: p.memberDeletes.length,
  backendDeletes: p.backendDeletes.length,
});
const none = {
  backends: 0,
  slots: 0,
  members: 0,
  services: 0,
  serviceDeletes: 0,
  slotDeletes: 0,
  memberDeletes: 0,
  backendDeletes: 0,
};

function first(services: LbServiceIr[]): { p: LbPlan; state: LbState } {
  const p = plan(emptyLbState, { services }, { maglevTableSize: M });
  return { p, state: p.next };
}

describe('plan', () => {
  it('writes backends, complete slot sets, then the services, from nothing', () => {
    const { p } = first([web, api]);
    expect(p.errors).toEqual([]);
    // web's two slots ride inline in its value; api's Maglev table is a set of M slots.
    expect(writes(p)).toEqual({ ...none, backends: 4, slots: M, services: 2 });
    expect(p.changed).toEqual(['default/api/grpc', 'default/web/http']);
    const [webValue, apiValue] = p.serviceWrites.map(([, v]) => v);
    expect(webValue).toEqual({
      slotSet: 1,
      count: 2,
      tag: serviceTag({ address: '10.96.0.10', port: 80, protocol: 'TCP' }),
      id: 1,
      affinityTimeoutSeconds: 0,
      algorithm: 'random',
      flags: ServiceFlag.inline,
      // The backends in canonical order, repeated so that any masked index holds one.
      inlineSlots: [1, 2, 1, 2, 1, 2, 1, 2],
    });
    expect(apiValue).toMatchObject({ slotSet: 2, count: M, id: 2, algorithm: 'maglev', flags: 0 });
    expect(new Set(p.slotWrites.map(([k]) => k.slotSet))).toEqual(new Set([2]));
    const apiIds = new Set(p.slotWrites.map(([, v]) => v.backendId));
    expect([...apiIds].sort()).toEqual([2, 3, 4]);
  });

  it('keeps up to eight random slots inline, and puts the set of nine in skein_slots', () => {
    const eight = { ...web, backends: Array.from({ length: 8 }, (_, i) => be(i + 1)) };
    expect(writes(first([eight]).p)).toEqual({ ...none, backends: 8, services: 1 });
    const nine = { ...web, backends: Array.from({ length: 9 }, (_, i) => be(i + 1)) };
    const p = first([nine]).p;
    expect(writes(p)).toEqual({ ...none, backends: 9, slots: 9, services: 1 });
    expect(p.serviceWrites[0]?.[1]).toMatchObject({
      flags: 0,
      count: 9,
      inlineSlots: [0, 0, 0, 0, 0, 0, 0, 0],
    });
  });

  it('writes nothing when nothing changed', () => {
    const { state } = first([web, api]);
    const again = plan(state, { services: [web, api] }, { maglevTableSize: M });
    expect(writes(again)).toEqual(none);
    expect(again.changed).toEqual([]);
    // Backends given in another order are the same set.
    const shuffled = plan(
      state,
      { services: [{ ...web, backends: [be(2), be(1)] }, api] },
      { maglevTableSize: M },
    );
    expect(writes(shuffled)).toEqual(none);
  });

  it('writes one changed service only: its new set, its value, then deletes its old set and the unused backend', () => {
    const { state } = first([web, api]);
    const p = plan(state, { services: [web, { ...api, backends: [be(2), be(3)] }] }, { maglevTableSize: M });
    expect(writes(p)).toEqual({ ...none, slots: M, services: 1, slotDeletes: M, backendDeletes: 1 });
    expect(p.changed).toEqual(['default/api/grpc']);
    expect(p.serviceWrites[0]?.[0]).toEqual({ address: '10.96.0.11', port: 9000, protocol: 'TCP' });
    // A fresh set id; the service keeps its id.
    expect(p.serviceWrites[0]?.[1]).toMatchObject({ slotSet: 3, id: 2, count: M });
    expect(new Set(p.slotWrites.map(([k]) => k.slotSet))).toEqual(new Set([3]));
    expect(new Set(p.slotDeletes.map((k) => k.slotSet))).toEqual(new Set([2]));
    expect(p.backendDeletes).toEqual([4]);
  });

  it('rewrites only the service value when only its affinity timeout changes', () => {
    const withAffinity = { ...web, sessionAffinity: { type: 'ClientIP', timeoutSeconds: 60 } } as const;
    const { p: p0, state } = first([withAffinity]);
    expect(p0.memberWrites.map(([k, v]) => [k.backendId, v.slots])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    expect(p0.serviceWrites[0]?.[1]).toMatchObject({
      flags: ServiceFlag.affinity | ServiceFlag.inline,
      affinityTimeoutSeconds: 60,
    });
    const p = plan(state, {
      services: [{ ...withAffinity, sessionAffinity: { type: 'ClientIP', timeoutSeconds: 90 } }],
    });
    expect(writes(p)).toEqual({ ...none, services: 1 });
    expect(p.serviceWrites[0]?.[1]).toMatchObject({ slotSet: 1, affinityTimeoutSeconds: 90 });
    // Turning affinity off drops the members with a new version (inline: no slots to write or delete).
    const off = plan(p.next, { services: [web] });
    expect(writes(off)).toEqual({ ...none, services: 1, memberDeletes: 2 });
    expect(off.serviceWrites[0]?.[1]).toMatchObject({ slotSet: 2, flags: ServiceFlag.inline });
  });

  it('counts a Maglev backend once per set in skein_members, with the slots it holds', () => {
    const { p } = first([{ ...api, sessionAffinity: { type: 'ClientIP', timeoutSeconds: 10 } }]);
    expect(p.memberWrites).toHaveLength(3);
    expect(p.memberWrites.reduce((n, [, v]) => n + v.slots, 0)).toBe(M);
  });

  it('removes a service: its value first, then its set; a backend another service uses stays', () => {
    const { state } = first([web, api]);
    const p = plan(state, { services: [api] }, { maglevTableSize: M });
    expect(writes(p)).toEqual({ ...none, serviceDeletes: 1, backendDeletes: 1 });
    expect(p.backendDeletes).toEqual([1]); // 10.1.0.2 is still one of api's
    expect(p.changed).toEqual(['default/web/http']);
    const q = plan(state, { services: [web] }, { maglevTableSize: M });
    expect(writes(q)).toEqual({ ...none, serviceDeletes: 1, slotDeletes: M, backendDeletes: 2 });
  });

  it('points a service without usable backends at no set, and back', () => {
    const { state } = first([web]);
    const empty = plan(state, { services: [{ ...web, backends: [] }] });
    expect(writes(empty)).toEqual({ ...none, services: 1, backendDeletes: 2 });
    expect(empty.serviceWrites[0]?.[1]).toMatchObject({ slotSet: 0, count: 0, id: 1, flags: 0 });
    const back = plan(empty.next, { services: [web] });
    expect(writes(back)).toEqual({ ...none, backends: 2, services: 1 });
    expect(back.serviceWrites[0]?.[1]).toMatchObject({ slotSet: 2, count: 2, id: 1 });
  });

  it('uses terminating backends only when no backend is active', () => {
    const { p } = first([{ ...web, backends: [be(1, 'terminating'), be(2)] }]);
    expect(p.serviceWrites[0]?.[1]).toMatchObject({ count: 1, inlineSlots: [1, 1, 1, 1, 1, 1, 1, 1] });
    expect(p.backendWrites.map(([, b]) => b.address)).toEqual(['10.1.0.2']);
    const all = first([{ ...web, backends: [be(1, 'terminating'), be(2, 'terminating')] }]).p;
    expect(all.serviceWrites[0]?.[1]).toMatchObject({ count: 2 });
  });

  it('keeps the last good entries of a service whose IR is invalid, and reports why', () => {
    const { state } = first([web, api]);
    const bad = { ...web, backends: [be(1), { address: '10.1.0.9', port: 70000, state: 'active' as const }] };
    const p = plan(state, { services: [bad, api] }, { maglevTableSize: M });
    expect(p.errors).toEqual([
      {
        code: 'SKEIN_LB_INVALID_PORT',
        path: 'services[0].backends[1].port',
        message: 'default/web/http 10.96.0.10:80/TCP: 70000 is not a port in 1..65535',
      },
    ]);
    expect(writes(p)).toEqual(none);
    expect(p.next.services.get('10.96.0.10|80|TCP')?.value.slotSet).toBe(1);
  });

  it('keeps the last good entries of a service whose new set does not fit the slot map', () => {
    const capacity = { services: 10, slots: M + 10, members: 10, backends: 10 };
    const s0 = plan(emptyLbState, { services: [web, api] }, { maglevTableSize: M, capacity }).next;
    const p = plan(
      s0,
      { services: [web, { ...api, backends: [be(2), be(3)] }] },
      { maglevTableSize: M, capacity },
    );
    expect(p.errors).toEqual([
      {
        code: 'SKEIN_LB_CAPACITY',
        message: `default/api/grpc 10.96.0.11:9000/TCP: its ${M} new slots do not fit skein_slots (${capacity.slots} entries, ${M} in use)`,
      },
    ]);
    expect(writes(p)).toEqual(none);
  });

  it('refuses a Maglev service with more backends than table slots, keeping what it had', () => {
    const many = { ...api, backends: Array.from({ length: 12 }, (_, i) => be(i + 10)) };
    const p = plan(emptyLbState, { services: [many] }, { maglevTableSize: 11 });
    expect(p.errors[0]).toMatchObject({ code: 'SKEIN_LB_MAGLEV_TABLE' });
    expect(p.errors[0]?.message).toContain('for 12 backends');
    expect(p.serviceWrites).toEqual([]);
  });

  it('never reuses a slot set id while its slots may be in the map', () => {
    let state = first([web]).state;
    const seen = new Set<number>([1]);
    for (let i = 0; i < 5; i++) {
      const p = plan(state, { services: [{ ...web, backends: i % 2 === 0 ? [be(1)] : [be(1), be(2)] }] });
      const id = p.serviceWrites[0]?.[1].slotSet ?? 0;
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      state = p.next;
    }
  });
});
