import { describe, expect, it } from 'vitest';
import type { Ir, IrBackend, IrListener, IrRoute } from '../../src/model/ir.js';
import { ORIGINAL_DESTINATION_BACKEND } from '../../src/model/names.js';
import { IrErrorCode, validate } from '../../src/model/validate.js';

// One small valid IR; each case below breaks exactly one thing in a copy of it.
const route: IrRoute = {
  name: 'httproute/default/web/rule/0/match/0',
  match: { path: { kind: 'PathPrefix', value: '/' } },
  action: { kind: 'forward', backends: [{ backend: 'default/web/80', weight: 1 }] },
};
const http: IrListener = {
  name: 'listener/0.0.0.0/8080',
  address: '0.0.0.0',
  port: 8080,
  protocol: 'HTTP',
  virtualHosts: [{ name: 'listener/0.0.0.0/8080/*', hostnames: ['*'], routes: [route] }],
};
const https: IrListener = {
  name: 'listener/0.0.0.0/8443',
  address: '0.0.0.0',
  port: 8443,
  protocol: 'HTTPS',
  virtualHosts: [
    { name: 'listener/0.0.0.0/8443/a.example.com', hostnames: ['a.example.com'], routes: [route] },
  ],
  tls: { mode: 'Terminate', certificates: [{ hostnames: ['a.example.com'], secretNames: ['default/cert'] }] },
};
const good: Ir = {
  listeners: [http, https],
  backends: [
    {
      name: 'default/web/80',
      protocol: 'http1',
      endpoints: [{ address: '127.0.0.1', port: 9000, ready: true }],
    },
  ],
  secrets: [{ name: 'default/cert', certificateChain: 'CERT', privateKey: 'KEY' }],
};

/** `good` with the first listener's only route replaced. */
function withRoute(r: IrRoute): Ir {
  const vh = http.virtualHosts[0];
  if (vh === undefined) throw new Error('no virtual host');
  return { ...good, listeners: [{ ...http, virtualHosts: [{ ...vh, routes: [r] }] }, https] };
}

const R = 'listeners[0].virtualHosts[0].routes[0]';

const originalDestination: IrBackend = {
  name: ORIGINAL_DESTINATION_BACKEND,
  protocol: 'http1',
  endpoints: [],
  originalDestination: { upstreamMark: 0xb000 },
};

const cases: { name: string; ir: Ir; code: IrErrorCode; path: string }[] = [
  {
    name: 'two backends with one name',
    ir: { ...good, backends: [...good.backends, ...good.backends] },
    code: IrErrorCode.DuplicateName,
    path: 'backends[1].name',
  },
  {
    name: 'two listeners on one socket',
    ir: { ...good, listeners: [http, { ...https, name: 'other', port: 8080 }] },
    code: IrErrorCode.DuplicateBind,
    path: 'listeners[1]',
  },
  {
    name: 'a listener address that is a hostname',
    ir: { ...good, listeners: [{ ...http, address: 'localhost' }, https] },
    code: IrErrorCode.InvalidAddress,
    path: 'listeners[0].address',
  },
  {
    name: 'an endpoint port out of range',
    ir: {
      ...good,
      backends: [
        {
          name: 'default/web/80',
          protocol: 'http1',
          endpoints: [{ address: '127.0.0.1', port: 0, ready: true }],
        },
      ],
    },
    code: IrErrorCode.InvalidPort,
    path: 'backends[0].endpoints[0].port',
  },
  {
    name: 'a path without a leading slash',
    ir: withRoute({ ...route, match: { path: { kind: 'Exact', value: 'api' } } }),
    code: IrErrorCode.InvalidPath,
    path: `${R}.match.path.value`,
  },
  {
    name: 'a regular expression with a backreference (RE2 has none)',
    ir: withRoute({ ...route, match: { path: { kind: 'RegularExpression', value: '/(a)\\1' } } }),
    code: IrErrorCode.InvalidRegex,
    path: `${R}.match.path.value`,
  },
  {
    name: 'a fractional weight',
    ir: withRoute({
      ...route,
      action: { kind: 'forward', backends: [{ backend: 'default/web/80', weight: 0.5 }] },
    }),
    code: IrErrorCode.InvalidWeight,
    path: `${R}.action.backends[0].weight`,
  },
  {
    name: 'a forward action without backends',
    ir: withRoute({ ...route, action: { kind: 'forward', backends: [] } }),
    code: IrErrorCode.NoBackends,
    path: `${R}.action.backends`,
  },
  {
    name: 'a route to a backend the IR does not have',
    ir: withRoute({
      ...route,
      action: { kind: 'forward', backends: [{ backend: 'default/ghost/80', weight: 1 }] },
    }),
    code: IrErrorCode.UnknownBackend,
    path: `${R}.action.backends[0].backend`,
  },
  {
    name: 'a certificate naming a secret the IR does not have',
    ir: { ...good, secrets: [] },
    code: IrErrorCode.UnknownSecret,
    path: 'listeners[1].tls.certificates[0].secretNames[0]',
  },
  {
    name: 'a direct response status out of range',
    ir: withRoute({ ...route, action: { kind: 'directResponse', status: 99 } }),
    code: IrErrorCode.InvalidStatus,
    path: `${R}.action.status`,
  },
  {
    name: 'a virtual host hostname that is not a DNS name',
    ir: {
      ...good,
      listeners: [
        {
          ...http,
          virtualHosts: [{ name: 'listener/0.0.0.0/8080/x', hostnames: ['a..example.com'], routes: [route] }],
        },
        https,
      ],
    },
    code: IrErrorCode.InvalidHostname,
    path: 'listeners[0].virtualHosts[0].hostnames[0]',
  },
  {
    name: 'virtual hosts on a TCP listener',
    ir: { ...good, listeners: [{ ...http, protocol: 'TCP' }, https] },
    code: IrErrorCode.ProtocolMismatch,
    path: 'listeners[0].virtualHosts',
  },
  {
    name: 'a transparent listener bound to one address (Envoy would report that address, not the original destination)',
    ir: { ...good, listeners: [{ ...http, address: '10.0.0.1', transparent: true }, https] },
    code: IrErrorCode.InvalidTransparent,
    path: 'listeners[0].address',
  },
  {
    name: 'a transparent TCP listener',
    ir: {
      ...good,
      listeners: [{ ...http, protocol: 'TCP', virtualHosts: [], l4Routes: [], transparent: true }, https],
    },
    code: IrErrorCode.InvalidTransparent,
    path: 'listeners[0].protocol',
  },
  {
    name: 'an ordinary listener forwarding to the original destination (a loop back to itself)',
    ir: {
      ...withRoute({
        ...route,
        action: { kind: 'forward', backends: [{ backend: ORIGINAL_DESTINATION_BACKEND, weight: 1 }] },
      }),
      backends: [...good.backends, originalDestination],
    },
    code: IrErrorCode.InvalidOriginalDestination,
    path: `${R}.action`,
  },
  {
    name: 'an original-destination backend with endpoints',
    ir: {
      ...good,
      backends: [
        ...good.backends,
        { ...originalDestination, endpoints: [{ address: '10.0.0.1', port: 80, ready: true }] },
      ],
    },
    code: IrErrorCode.InvalidOriginalDestination,
    path: 'backends[1].endpoints',
  },
  {
    name: 'an original-destination backend under another name',
    ir: { ...good, backends: [...good.backends, { ...originalDestination, name: 'default/od/80' }] },
    code: IrErrorCode.InvalidOriginalDestination,
    path: 'backends[1].name',
  },
  {
    name: 'an upstream mark that is not a 32-bit mark',
    ir: {
      ...good,
      backends: [...good.backends, { ...originalDestination, originalDestination: { upstreamMark: -1 } }],
    },
    code: IrErrorCode.InvalidOriginalDestination,
    path: 'backends[1].originalDestination.upstreamMark',
  },
  {
    name: 'the reserved name on an ordinary backend',
    ir: {
      ...good,
      backends: [...good.backends, { name: ORIGINAL_DESTINATION_BACKEND, protocol: 'http1', endpoints: [] }],
    },
    code: IrErrorCode.InvalidOriginalDestination,
    path: 'backends[1].originalDestination',
  },
];

describe('validate', () => {
  it('finds nothing wrong with the valid IR the cases start from', () => {
    expect(validate(good)).toEqual([]);
  });

  it('has a case for every code', () => {
    expect(new Set(cases.map((c) => c.code))).toEqual(new Set(Object.values(IrErrorCode)));
  });

  for (const c of cases) {
    it(`reports ${c.code} for ${c.name}, with the path of the field`, () => {
      const errors = validate(c.ir);
      // The one broken thing, and nothing else.
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: c.code, path: c.path });
      expect(errors[0]?.message).not.toBe('');
    });
  }

  it('reports every problem, not just the first', () => {
    const ir: Ir = {
      ...withRoute({
        ...route,
        match: { path: { kind: 'Exact', value: 'x' } },
        action: { kind: 'forward', backends: [{ backend: 'nope', weight: -1 }] },
      }),
      secrets: [],
    };
    expect(validate(ir).map((e) => [e.code, e.path])).toEqual([
      [IrErrorCode.InvalidPath, `${R}.match.path.value`],
      [IrErrorCode.UnknownBackend, `${R}.action.backends[0].backend`],
      [IrErrorCode.InvalidWeight, `${R}.action.backends[0].weight`],
      [IrErrorCode.UnknownSecret, 'listeners[1].tls.certificates[0].secretNames[0]'],
    ]);
  });
});
