import { describe, expect, it } from 'vitest';
import type { Ir, IrListener, IrRoute } from '../../src/model/ir.js';
import { TypeUrl } from '../../src/xds/proto.js';
import type { ResourceSpec } from '../../src/xds/resource.js';
import { createIrTranslator, translateIr } from '../../src/xds/translate/translate.js';
import { TranslateError, TranslateErrorCode } from '../../src/xds/translate/translateError.js';
import { loadCase } from './translateCases.js';

/** Memoisation on IR object identity, the translator's contract on bad input, and a few edge rules. */

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function route(name: string, backend: string): IrRoute {
  return {
    name,
    match: { path: { kind: 'PathPrefix', value: '/' } },
    action: { kind: 'forward', backends: [{ backend, weight: 1 }] },
  };
}

function listener(port: number, hostname: string, backend: string): IrListener {
  const name = `listener/0.0.0.0/${port}`;
  return {
    name,
    address: '0.0.0.0',
    port,
    protocol: 'HTTP',
    virtualHosts: [
      { name: `${name}/${hostname}`, hostnames: [hostname], routes: [route(`r/${port}`, backend)] },
    ],
  };
}

/** An IR of three listeners and two backends; frozen, so any mutation by the translator throws. */
function baseIr(): Ir {
  return deepFreeze({
    listeners: [
      listener(8080, 'a.example.com', 'default/a/80'),
      listener(8081, 'b.example.com', 'default/b/80'),
      listener(8082, 'c.example.com', 'default/a/80'),
    ],
    backends: [
      {
        name: 'default/a/80',
        protocol: 'http1',
        endpoints: [{ address: '10.0.0.1', port: 80, ready: true }],
      },
      {
        name: 'default/b/80',
        protocol: 'http1',
        endpoints: [{ address: '10.0.0.2', port: 80, ready: true }],
      },
    ],
    secrets: [],
  } satisfies Ir);
}

function byKey(specs: readonly ResourceSpec[]): Map<string, ResourceSpec> {
  return new Map(specs.map((s) => [`${s.typeUrl} ${s.name}`, s]));
}

describe('memoisation on IR object identity', () => {
  it.each(['envoy', 'grpc'] as const)('re-translates only the listener that changed (%s)', (flavor) => {
    const translator = createIrTranslator();
    const ir1 = baseIr();
    const first = byKey(translator.translate(ir1, { flavor }));

    // Structural sharing: a new IR whose listeners array holds the same objects, but for one.
    const [l0, l1, l2] = ir1.listeners;
    if (l0 === undefined || l1 === undefined || l2 === undefined) throw new Error('three listeners expected');
    const changed = deepFreeze(listener(8081, 'b.example.com', 'default/a/80'));
    const ir2: Ir = { ...ir1, listeners: [l0, changed, l2] };
    const second = byKey(translator.translate(ir2, { flavor }));

    expect([...second.keys()]).toEqual([...first.keys()]);
    const changedNames =
      flavor === 'envoy' ? ['listener/0.0.0.0/8081'] : ['b.example.com', 'grpc/b.example.com'];
    for (const [key, spec] of second) {
      if (changedNames.includes(spec.name)) {
        expect(spec, key).not.toBe(first.get(key));
      } else {
        expect(spec, key).toBe(first.get(key));
      }
    }
    // The changed listener's routes now use default/a/80, and its deps say so.
    const rdsName = flavor === 'envoy' ? 'listener/0.0.0.0/8081' : 'grpc/b.example.com';
    const rds = second.get(`${TypeUrl.RouteConfiguration} ${rdsName}`);
    expect(rds?.deps.map((d) => d.name)).toEqual(['default/a/80', 'default/a/80']);
  });

  it('re-translates only the backend that changed, and no listener', () => {
    const translator = createIrTranslator();
    const ir1 = baseIr();
    const first = byKey(translator.translate(ir1, { flavor: 'envoy' }));
    const [b0] = ir1.backends;
    if (b0 === undefined) throw new Error('backend expected');
    const scaled = deepFreeze({
      name: 'default/b/80',
      protocol: 'http1' as const,
      endpoints: [
        { address: '10.0.0.2', port: 80, ready: true },
        { address: '10.0.0.3', port: 80, ready: true },
      ],
    });
    const second = byKey(translator.translate({ ...ir1, backends: [b0, scaled] }, { flavor: 'envoy' }));
    for (const [key, spec] of second) {
      if (spec.name === 'default/b/80') expect(spec, key).not.toBe(first.get(key));
      else expect(spec, key).toBe(first.get(key));
    }
  });

  it('gives equal output with or without memoisation', () => {
    const translator = createIrTranslator();
    const ir = loadCase('https-two-secrets').ir;
    translator.translate(ir, { flavor: 'envoy' });
    expect(translator.translate(ir, { flavor: 'envoy' })).toEqual(translateIr(ir, { flavor: 'envoy' }));
  });

  it('moves a gRPC hostname to the next listener when the winning one goes', () => {
    const translator = createIrTranslator();
    const a = deepFreeze(listener(8080, 'shared.example.com', 'default/a/80'));
    const b = deepFreeze(listener(9090, 'shared.example.com', 'default/b/80'));
    const ir: Ir = { listeners: [a, b], backends: baseIr().backends, secrets: [] };
    const cluster = (specs: ResourceSpec[]) =>
      JSON.stringify(specs.find((s) => s.name === 'grpc/shared.example.com')?.message).match(
        /default\/[ab]\/80/,
      )?.[0];
    expect(cluster(translator.translate(ir, { flavor: 'grpc' }))).toBe('default/a/80');
    expect(cluster(translator.translate({ ...ir, listeners: [b] }, { flavor: 'grpc' }))).toBe('default/b/80');
  });
});

describe('contract on bad input', () => {
  it('rejects an unknown flavour with a stable code', () => {
    const call = () => translateIr(baseIr(), { flavor: 'istio' as 'envoy' });
    expect(call).toThrow(TranslateError);
    expect(call).toThrow(expect.objectContaining({ code: TranslateErrorCode.InvalidOptions }));
  });

  it('rejects duplicate names (an IR that skipped validate) instead of emitting two resources', () => {
    const ir = baseIr();
    const dup: Ir = { ...ir, backends: [...ir.backends, ...ir.backends] };
    expect(() => translateIr(dup, { flavor: 'envoy' })).toThrow(
      expect.objectContaining({ code: TranslateErrorCode.DuplicateResource }),
    );
  });

  it('does not program an HTTPS listener that has no certificate', () => {
    const l: IrListener = { ...listener(8443, 'a.example.com', 'default/a/80'), protocol: 'HTTPS' };
    const specs = translateIr({ ...baseIr(), listeners: [l] }, { flavor: 'envoy' });
    expect(
      specs.filter((s) => s.typeUrl === TypeUrl.Listener || s.typeUrl === TypeUrl.RouteConfiguration),
    ).toEqual([]);
  });

  it('never asks Envoy to modify pseudo-headers or host, which it would reject', () => {
    const r: IrRoute = {
      ...route('r', 'default/a/80'),
      requestHeaders: {
        set: [
          { name: 'host', value: 'first.example.com' },
          { name: 'HOST', value: 'internal.example.com' },
          { name: ':path', value: '/x' },
          { name: 'x-ok', value: '1' },
        ],
        add: [{ name: ':authority', value: 'a' }],
        remove: ['host', ':method', 'x-gone'],
      },
      responseHeaders: { set: [{ name: ':status', value: '200' }], remove: [':status'] },
    };
    const l: IrListener = {
      ...listener(8080, '*', 'default/a/80'),
      virtualHosts: [{ name: 'vh', hostnames: ['*'], routes: [r] }],
    };
    const rds = translateIr({ ...baseIr(), listeners: [l] }, { flavor: 'envoy' }).find(
      (s) => s.typeUrl === TypeUrl.RouteConfiguration,
    );
    const text = JSON.stringify(rds?.message);
    expect(text).toContain('"hostRewriteLiteral":"internal.example.com"');
    expect(text).toContain('"requestHeadersToAdd":[{"header":{"key":"x-ok","value":"1"}');
    expect(text).toContain('"requestHeadersToRemove":["x-gone"]');
    expect(text).not.toMatch(/"key":"(:|host)|"responseHeaders|"(:method|host)"/i);
  });
});
