// The services IR validator: one case per SKEIN_LB_* code, each breaking one field of a valid IR, with
// the path and message it must report; and the kube-proxy rule for which backends take new connections.

import { describe, expect, it } from 'vitest';
import {
  addressSortKey,
  invalidServices,
  LbIrErrorCode,
  type LbServiceIr,
  type ServicesIr,
  usableBackends,
  validateServices,
} from '../../src/model/serviceLb.js';

const web: LbServiceIr = {
  name: 'default/web/http',
  address: '10.96.0.10',
  port: 80,
  protocol: 'TCP',
  algorithm: 'random',
  sessionAffinity: { type: 'ClientIP', timeoutSeconds: 10800 },
  backends: [
    { address: '10.1.0.1', port: 8080, state: 'active' },
    { address: '10.1.0.2', port: 8080, state: 'terminating' },
  ],
};
const web6: LbServiceIr = {
  ...web,
  address: 'fd00:96::10',
  backends: [{ address: 'fd00:1::1', port: 8080, state: 'active' }],
};
const dns: LbServiceIr = { ...web, name: 'kube-system/dns/dns', port: 53, protocol: 'UDP', backends: [] };
const good: ServicesIr = { services: [web, web6, dns] };

const with0 = (patch: Partial<LbServiceIr>): ServicesIr => ({ services: [{ ...web, ...patch }, web6, dns] });

describe('validateServices', () => {
  it('accepts a valid IR (dual-stack, UDP, affinity, terminating backends, no backends)', () => {
    expect(validateServices(good)).toEqual([]);
  });

  const cases: { name: string; ir: ServicesIr; code: string; path: string; message: string }[] = [
    {
      name: 'two entries for one VIP, port and protocol',
      ir: { services: [web, { ...web, name: 'default/other/http' }] },
      code: LbIrErrorCode.DuplicateService,
      path: 'services[1]',
      message: 'default/other/http 10.96.0.10:80/TCP: services[0] has the same address, port and protocol',
    },
    {
      name: 'a VIP that is not an address',
      ir: with0({ address: '10.96.0.300' }),
      code: LbIrErrorCode.InvalidAddress,
      path: 'services[0].address',
      message: 'default/web/http 10.96.0.300:80/TCP: "10.96.0.300" is not an IP address',
    },
    {
      name: 'a port out of range',
      ir: with0({ port: 0 }),
      code: LbIrErrorCode.InvalidPort,
      path: 'services[0].port',
      message: 'default/web/http 10.96.0.10:0/TCP: 0 is not a port in 1..65535',
    },
    {
      name: 'SCTP',
      ir: with0({ protocol: 'SCTP' as 'TCP' }),
      code: LbIrErrorCode.InvalidProtocol,
      path: 'services[0].protocol',
      message: 'default/web/http 10.96.0.10:80/SCTP: "SCTP" is not TCP or UDP',
    },
    {
      name: 'an unknown algorithm',
      ir: with0({ algorithm: 'ring-hash' as 'random' }),
      code: LbIrErrorCode.InvalidAlgorithm,
      path: 'services[0].algorithm',
      message: 'default/web/http 10.96.0.10:80/TCP: "ring-hash" is not random or maglev',
    },
    {
      name: 'an affinity timeout beyond a day',
      ir: with0({ sessionAffinity: { type: 'ClientIP', timeoutSeconds: 86401 } }),
      code: LbIrErrorCode.InvalidAffinity,
      path: 'services[0].sessionAffinity.timeoutSeconds',
      message: 'default/web/http 10.96.0.10:80/TCP: 86401 is not a whole number of seconds in 1..86400',
    },
    {
      name: 'an affinity type other than ClientIP',
      ir: with0({ sessionAffinity: { type: 'Cookie' as 'ClientIP', timeoutSeconds: 10 } }),
      code: LbIrErrorCode.InvalidAffinity,
      path: 'services[0].sessionAffinity.type',
      message: 'default/web/http 10.96.0.10:80/TCP: "Cookie" is not ClientIP',
    },
    {
      name: 'a backend state that is neither active nor terminating',
      ir: with0({ backends: [{ address: '10.1.0.1', port: 8080, state: 'ready' as 'active' }] }),
      code: LbIrErrorCode.InvalidState,
      path: 'services[0].backends[0].state',
      message: 'default/web/http 10.96.0.10:80/TCP: "ready" is not active or terminating',
    },
    {
      name: 'an IPv6 backend for an IPv4 VIP',
      ir: with0({ backends: [{ address: 'fd00:1::1', port: 8080, state: 'active' }] }),
      code: LbIrErrorCode.FamilyMismatch,
      path: 'services[0].backends[0].address',
      message: 'default/web/http 10.96.0.10:80/TCP: backend fd00:1::1 is IPv6 and the service address IPv4',
    },
    {
      name: 'a backend that is not an address',
      ir: with0({ backends: [{ address: 'pod-a', port: 8080, state: 'active' }] }),
      code: LbIrErrorCode.InvalidAddress,
      path: 'services[0].backends[0].address',
      message: 'default/web/http 10.96.0.10:80/TCP: "pod-a" is not an IP address',
    },
    {
      name: 'a backend port out of range',
      ir: with0({ backends: [{ address: '10.1.0.1', port: 65536, state: 'active' }] }),
      code: LbIrErrorCode.InvalidPort,
      path: 'services[0].backends[0].port',
      message: 'default/web/http 10.96.0.10:80/TCP: 65536 is not a port in 1..65535',
    },
    {
      name: 'one backend listed twice',
      ir: with0({
        backends: [
          { address: '10.1.0.1', port: 8080, state: 'active' },
          { address: '10.1.0.1', port: 8080, state: 'terminating' },
        ],
      }),
      code: LbIrErrorCode.DuplicateBackend,
      path: 'services[0].backends[1]',
      message: 'default/web/http 10.96.0.10:80/TCP: backends[0] has the same address and port',
    },
    {
      name: 'more backends than a slot set holds',
      ir: with0({
        backends: Array.from({ length: 65536 }, (_, i) => ({
          address: `10.${2 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
          port: 8080,
          state: 'active' as const,
        })),
      }),
      code: LbIrErrorCode.TooManyBackends,
      path: 'services[0].backends',
      message: 'default/web/http 10.96.0.10:80/TCP: 65536 backends; the datapath holds at most 65535',
    },
  ];

  it.each(cases)('reports $code for $name, at its path', ({ ir, code, path, message }) => {
    expect(validateServices(ir)).toEqual([{ code, path, message }]);
    expect(invalidServices(validateServices(ir))).toEqual(new Set([Number(/\d+/.exec(path)?.[0])]));
  });

  it('covers every code', () => {
    expect(new Set(cases.map((c) => c.code))).toEqual(new Set(Object.values(LbIrErrorCode)));
  });
});

describe('usableBackends', () => {
  it('takes the active backends when there are any, else the terminating ones', () => {
    expect(usableBackends(web).map((b) => b.address)).toEqual(['10.1.0.1']);
    const draining = { ...web, backends: web.backends.map((b) => ({ ...b, state: 'terminating' as const })) };
    expect(usableBackends(draining).map((b) => b.address)).toEqual(['10.1.0.1', '10.1.0.2']);
    expect(usableBackends(dns)).toEqual([]);
  });
});

describe('addressSortKey', () => {
  it('sorts IPv4 numerically, before IPv6, and IPv6 by value whatever its spelling', () => {
    const sorted = ['fd00::a', '10.1.0.12', '::ffff:10.1.0.4', '10.1.0.3', 'fd00:0:0:0:0:0:0:9', '::1']
      .map((a) => ({ a, k: addressSortKey(a) }))
      .sort((x, y) => (x.k < y.k ? -1 : 1))
      .map((x) => x.a);
    expect(sorted).toEqual([
      '::1',
      '10.1.0.3',
      '::ffff:10.1.0.4',
      '10.1.0.12',
      'fd00:0:0:0:0:0:0:9',
      'fd00::a',
    ]);
    expect(addressSortKey('10.96.0.10')).toBe(addressSortKey('::ffff:10.96.0.10'));
  });
});
