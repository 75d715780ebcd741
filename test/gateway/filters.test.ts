import { describe, expect, it } from 'vitest';
import type { BackendResolution } from '../../src/gateway/backends.js';
import {
  BACKEND_REF_FILTERS,
  GRPC_ROUTE_FILTERS,
  HTTP_ROUTE_FILTERS,
  mirrorBackendRefs,
  type RouteFilterSpec,
  translateFilters,
} from '../../src/gateway/filters.js';
import { translateRouteRules } from '../../src/gateway/routeRules.js';
import type { HTTPRoute } from '../../src/sources/objects.js';

/**
 * translateFilters: the filter → IR step shared by HTTPRoute and GRPCRoute. The golden files cover the
 * filters as conformance tests use them; these cover the values and combinations a CRD would stop
 * but a translator must still survive (objects from an older or newer CRD, or from files).
 */

const ok = (backend: string): BackendResolution => ({ ok: true, backend });
const missing: BackendResolution = { ok: false, reason: 'BackendNotFound', message: 'Service x not found' };

function filters(list: readonly unknown[], mirrors: readonly BackendResolution[] = []) {
  return translateFilters(list as RouteFilterSpec[], {
    at: 'rules[0].filters',
    supported: HTTP_ROUTE_FILTERS,
    mirrors,
  });
}

function problem(list: readonly unknown[]): string {
  const r = filters(list);
  if (r.ok) throw new Error(`expected a problem, got ${JSON.stringify(r.filters)}`);
  return r.problem;
}

describe('translateFilters', () => {
  it('needs no filters', () => {
    expect(filters([])).toEqual({ ok: true, filters: {} });
    expect(translateFilters(undefined, { at: 'x', supported: HTTP_ROUTE_FILTERS, mirrors: [] })).toEqual({
      ok: true,
      filters: {},
    });
  });

  it('takes the first of equivalent header names (case-insensitive) and sorts by name', () => {
    const r = filters([
      {
        type: 'RequestHeaderModifier',
        requestHeaderModifier: {
          set: [
            { name: 'X-B', value: '1' },
            { name: 'x-b', value: '2' },
            { name: 'X-A', value: '3' },
          ],
          remove: ['X-Gone', 'x-gone'],
        },
      },
    ]);
    expect(r).toEqual({
      ok: true,
      filters: {
        requestHeaders: {
          set: [
            { name: 'X-A', value: '3' },
            { name: 'X-B', value: '1' },
          ],
          remove: ['X-Gone'],
        },
      },
    });
  });

  it('leaves out a header filter that changes nothing', () => {
    expect(filters([{ type: 'ResponseHeaderModifier', responseHeaderModifier: {} }])).toEqual({
      ok: true,
      filters: {},
    });
  });

  it('refuses header values Envoy would reject, and bad header names', () => {
    expect(
      problem([
        { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: 'a\r\nb' }] } },
      ]),
    ).toMatch(/rules\[0\]\.filters\[0\]: set: the value of x-a/);
    expect(
      problem([
        { type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x a', value: 'b' }] } },
      ]),
    ).toMatch(/"x a" is not a header name/);
  });

  it('drops the rule for unknown, repeated, misconfigured or misplaced filters', () => {
    expect(problem([{ type: 'Teleport' }])).toBe(
      'rules[0].filters[0]: filter type Teleport is not supported',
    );
    const twice = { type: 'URLRewrite', urlRewrite: { hostname: 'a.example' } };
    expect(problem([twice, twice])).toBe('rules[0].filters[1]: URLRewrite filter cannot be repeated');
    expect(problem([{ type: 'CORS' }])).toBe('rules[0].filters[0]: CORS needs its cors field');
    expect(
      problem([
        { type: 'RequestRedirect', requestRedirect: { scheme: 'https' } },
        { type: 'URLRewrite', urlRewrite: { hostname: 'a.example' } },
      ]),
    ).toBe('rules[0].filters: may specify either RequestRedirect or URLRewrite, not both');
    const grpc = translateFilters([{ type: 'URLRewrite', urlRewrite: {} }], {
      at: 'rules[0].filters',
      supported: GRPC_ROUTE_FILTERS,
      mirrors: [],
    });
    expect(grpc).toEqual({
      ok: false,
      problem: 'rules[0].filters[0]: filter type URLRewrite is not supported here',
    });
    const backend = translateFilters([{ type: 'CORS', cors: {} }], {
      at: 'rules[0].backendRefs[0].filters',
      supported: BACKEND_REF_FILTERS,
      mirrors: [],
    });
    expect(backend.ok).toBe(false);
  });

  it('applies the redirect port rules: explicit, implied by the scheme, else the listener (left out)', () => {
    const redirect = (requestRedirect: object) => {
      const r = filters([{ type: 'RequestRedirect', requestRedirect }]);
      return r.ok ? r.filters.redirect : r.problem;
    };
    expect(redirect({})).toEqual({ kind: 'redirect', statusCode: 302 });
    expect(redirect({ scheme: 'https' })).toEqual({
      kind: 'redirect',
      scheme: 'https',
      port: 443,
      statusCode: 302,
    });
    expect(redirect({ scheme: 'http', port: 8080 })).toEqual({
      kind: 'redirect',
      scheme: 'http',
      port: 8080,
      statusCode: 302,
    });
    expect(redirect({ hostname: 'Example.ORG', statusCode: 308 })).toEqual({
      kind: 'redirect',
      hostname: 'example.org',
      statusCode: 308,
    });
    expect(redirect({ scheme: 'ftp' })).toMatch(/scheme ftp is not supported/);
    expect(redirect({ statusCode: 304 })).toMatch(/statusCode 304 is not supported/);
    expect(redirect({ port: 0 })).toMatch(/port 0 is not a port/);
    expect(redirect({ hostname: '*.example.org' })).toMatch(/is not a precise hostname/);
  });

  it('checks path modifiers: type, field, absolute path, URL characters', () => {
    const rewrite = (path: object) => {
      const r = filters([{ type: 'URLRewrite', urlRewrite: { path } }]);
      return r.ok ? r.filters.rewrite : r.problem;
    };
    expect(rewrite({ type: 'ReplacePrefixMatch', replacePrefixMatch: '' })).toEqual({
      path: { kind: 'ReplacePrefixMatch', value: '/' },
    });
    expect(rewrite({ type: 'ReplaceFullPath', replaceFullPath: '/a/b' })).toEqual({
      path: { kind: 'ReplaceFullPath', value: '/a/b' },
    });
    expect(rewrite({ type: 'ReplaceFullPath' })).toMatch(/replaceFullPath must be set/);
    expect(rewrite({ type: 'ReplaceFullPath', replaceFullPath: 'relative' })).toMatch(/must start with "\/"/);
    expect(rewrite({ type: 'ReplaceFullPath', replaceFullPath: '/a b' })).toMatch(/URL path characters/);
    // A query is fine in a redirect's Location, not in a rewritten path.
    expect(rewrite({ type: 'ReplaceFullPath', replaceFullPath: '/a?b=c' })).toMatch(/URL path characters/);
    const r = filters([
      {
        type: 'RequestRedirect',
        requestRedirect: { path: { type: 'ReplaceFullPath', replaceFullPath: '/a?b=c' } },
      },
    ]);
    expect(r.ok && r.filters.redirect?.path).toEqual({ kind: 'ReplaceFullPath', value: '/a?b=c' });
  });

  it('mirrors to resolved backends only, with percent or fraction', () => {
    const list = [
      { type: 'RequestMirror', requestMirror: { backendRef: { name: 'a', port: 80 } } },
      { type: 'RequestMirror', requestMirror: { backendRef: { name: 'b', port: 80 }, percent: 25 } },
      {
        type: 'RequestMirror',
        requestMirror: { backendRef: { name: 'c', port: 80 }, fraction: { numerator: 1, denominator: 8 } },
      },
    ];
    expect(mirrorBackendRefs(list as RouteFilterSpec[]).map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expect(filters(list, [ok('ns/a/80'), missing, ok('ns/c/80')])).toEqual({
      ok: true,
      filters: { mirrors: [{ backend: 'ns/a/80' }, { backend: 'ns/c/80', percent: 12.5 }] },
    });
    const both = { backendRef: { name: 'a', port: 80 }, percent: 5, fraction: { numerator: 1 } };
    expect(problem([{ type: 'RequestMirror', requestMirror: both }])).toMatch(
      /only one of percent or fraction/,
    );
    const over = { backendRef: { name: 'a', port: 80 }, fraction: { numerator: 3, denominator: 2 } };
    expect(problem([{ type: 'RequestMirror', requestMirror: over }])).toMatch(/numerator must be less than/);
  });

  it('checks CORS lists: origins, a lone wildcard, methods, maxAge defaulting to 5', () => {
    const cors = (c: object) => {
      const r = filters([{ type: 'CORS', cors: c }]);
      return r.ok ? r.filters.cors : r.problem;
    };
    expect(cors({ allowOrigins: ['https://A.Example', 'https://a.example'] })).toEqual({
      allowOrigins: ['https://a.example'],
      allowMethods: [],
      allowHeaders: [],
      exposeHeaders: [],
      allowCredentials: false,
      maxAgeSeconds: 5,
    });
    expect(cors({ allowOrigins: ['*', 'https://a.example'] })).toMatch(/cannot contain '\*' alongside/);
    expect(cors({ allowOrigins: ['ftp://a.example'] })).toMatch(
      /allowOrigins: "ftp:\/\/a.example" is not valid/,
    );
    expect(cors({ allowMethods: ['BREW'] })).toMatch(/allowMethods: "BREW" is not valid/);
    expect(cors({ maxAge: 0 })).toMatch(/maxAge 0/);
  });

  it('fails ExtensionRef and ExternalAuth closed instead of skipping them', () => {
    const r = filters([
      { type: 'ExtensionRef', extensionRef: { group: 'example.com', kind: 'Foo', name: 'x' } },
      { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'a', value: 'b' }] } },
    ]);
    expect(r.ok && r.filters.fail?.filter).toBe('ExtensionRef');
    const auth = filters([{ type: 'ExternalAuth', externalAuth: { protocol: 'HTTP' } }]);
    expect(auth.ok && auth.filters.fail?.message).toMatch(/fails closed/);
  });
});

describe('RequestRedirect with backendRefs', () => {
  // The HTTPRoute CRD (v1.6 standard) rejects this combination with a CEL rule ("RequestRedirect filter
  // must not be used together with backendRefs"), and so does the file source; objects stored under an
  // older CRD can still carry it. Only that rule is dropped: its requests are neither redirected nor
  // forwarded, and the other rules keep serving.
  it('drops that rule alone, with the CRD rule as the reason', () => {
    const route = {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'r', namespace: 'default' },
      spec: {
        rules: [
          {
            filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'elsewhere.example.com' } }],
            backendRefs: [{ name: 'web', port: 80 }],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/kept' } }],
            backendRefs: [{ name: 'web', port: 80 }],
          },
        ],
      },
    } as unknown as HTTPRoute;
    const t = translateRouteRules(route, [[ok('default/web/80')], [ok('default/web/80')]]);
    expect(t.dropped).toEqual([
      'rules[0]: a RequestRedirect filter must not be used together with backendRefs',
    ]);
    expect(t.rules.map((r) => r.index)).toEqual([1]);
  });
});
