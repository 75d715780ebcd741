import { Metadata } from '@grpc/grpc-js';
import { register } from '@grpc/grpc-js-xds';
// gRPC's own xDS client, used as the judge: its resource decoders (which validate exactly as a proxyless
// client does before it ACKs) and its route matcher. Internal modules of the pinned version.
import { decodeSingleResource, RDS_TYPE_URL } from '@grpc/grpc-js-xds/build/src/resources.js';
import { getPredicateForMatcher } from '@grpc/grpc-js-xds/build/src/route.js';
import { ClusterResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js';
import { EndpointResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/endpoint-resource-type.js';
import { ListenerResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type.js';
import { RouteConfigurationResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/route-config-resource-type.js';
import type {
  XdsDecodeContext,
  XdsResourceType,
} from '@grpc/grpc-js-xds/build/src/xds-resource-type/xds-resource-type.js';
import { describe, expect, it } from 'vitest';
import { encodeAny, messageType, TypeUrl } from '../../src/xds/proto.js';
import type { ResourceSpec } from '../../src/xds/resource.js';
import { createIrTranslator, translateIr } from '../../src/xds/translate/translate.js';
import { loadCase, loadCases } from './translateCases.js';

/**
 * The gRPC flavour, judged by @grpc/grpc-js-xds: every resource must decode without a validation error
 * (a proxyless client NACKs the whole resource otherwise), and routes must match the calls the IR says
 * they match, under gRPC's own matcher.
 */

// What a client does on start: registers the HTTP filters and balancers the decoders validate against.
register();

const DECODERS: Partial<Record<TypeUrl, XdsResourceType>> = {
  [TypeUrl.Listener]: ListenerResourceType.get(),
  [TypeUrl.RouteConfiguration]: RouteConfigurationResourceType.get(),
  [TypeUrl.Cluster]: ClusterResourceType.get(),
  [TypeUrl.ClusterLoadAssignment]: EndpointResourceType.get(),
};

/** Only TLS validation reads the context; Skein's gRPC resources carry no TLS. */
const context = { server: {}, bootstrap: { certificateProviders: {} } } as unknown as XdsDecodeContext;

function anyOf(spec: ResourceSpec): { type_url: string; value: Buffer } {
  const any = messageType('google.protobuf.Any').decode(encodeAny(spec.typeUrl, spec.message)) as unknown as {
    type_url: string;
    value: Uint8Array;
  };
  return { type_url: any.type_url, value: Buffer.from(any.value) };
}

function grpcDecode(spec: ResourceSpec): { name: string; value?: object; error?: string } {
  const decoder = DECODERS[spec.typeUrl];
  if (decoder === undefined) throw new Error(`gRPC clients do not take ${spec.typeUrl}`);
  return decoder.decode(context, anyOf(spec));
}

describe('grpc-js-xds accepts the gRPC flavour', () => {
  it.each(loadCases().map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const specs = translateIr(c.ir, { flavor: 'grpc' });
    expect(specs.some((s) => s.typeUrl === TypeUrl.Secret)).toBe(false);
    for (const s of specs) {
      const result = grpcDecode(s);
      expect(result.error, `${s.typeUrl} ${s.name}`).toBeUndefined();
      expect(result.name).toBe(s.name);
    }
  });

  it('rejects what only Envoy understands (negative control)', () => {
    const envoyRoutes = (name: string) =>
      translateIr(loadCase(name).ir, { flavor: 'envoy' }).filter(
        (s) => s.typeUrl === TypeUrl.RouteConfiguration,
      );
    const [segmentPrefix] = envoyRoutes('matches');
    const [direct] = envoyRoutes('direct-response');
    if (segmentPrefix === undefined || direct === undefined) throw new Error('route configurations expected');
    expect(grpcDecode(segmentPrefix).error).toMatch(/unsupported path_specifier: path_separated_prefix/);
    expect(grpcDecode(direct).error).toMatch(/unsupported action: direct_response/);
  });

  it('accepts the Envoy flavour clusters and endpoints too (they are shared), but for TLS backends and the original destination', () => {
    for (const c of loadCases()) {
      // The original-destination cluster serves Envoy's transparent listener only; the gRPC flavour
      // leaves it out (checked below).
      const tls = new Set(
        c.ir.backends
          .filter((b) => b.tls !== undefined || b.originalDestination !== undefined)
          .map((b) => b.name),
      );
      for (const s of translateIr(c.ir, { flavor: 'envoy' })) {
        if (s.typeUrl !== TypeUrl.Cluster && s.typeUrl !== TypeUrl.ClusterLoadAssignment) continue;
        if (tls.has(s.name)) continue;
        expect(grpcDecode(s).error, `${c.name}: ${s.typeUrl} ${s.name}`).toBeUndefined();
      }
    }
  });

  it('leaves the transparent listener and the original-destination cluster to Envoy', () => {
    const ir = loadCase('transparent-proxy').ir;
    expect(ir.backends.map((b) => b.name)).toEqual(['skein:original-destination']);
    const envoy = translateIr(ir, { flavor: 'envoy' });
    expect(envoy.map((s) => s.name).sort()).toEqual([
      'listener/0.0.0.0/15001',
      'listener/0.0.0.0/15001',
      'skein:original-destination',
    ]);
    expect(translateIr(ir, { flavor: 'grpc' })).toEqual([]);
  });

  it('rejects an Envoy flavour TLS cluster (inline CAs), which is why the gRPC flavour has its own', () => {
    const envoy = translateIr(loadCase('upstream-tls').ir, { flavor: 'envoy' });
    const grpc = translateIr(loadCase('upstream-tls').ir, { flavor: 'grpc' });
    const cluster = (specs: readonly ResourceSpec[]) =>
      specs.find((s) => s.typeUrl === TypeUrl.Cluster && s.name === 'default/web/443');
    const envoyCluster = cluster(envoy);
    const grpcCluster = cluster(grpc);
    if (envoyCluster === undefined || grpcCluster === undefined) throw new Error('clusters expected');
    expect(grpcDecode(envoyCluster).error).toMatch(/ca_certificate_provider_instance unset/);
    // The gRPC flavour: no TLS and no endpoints, so calls fail (UNAVAILABLE) rather than go in clear text.
    expect(grpcDecode(grpcCluster).error).toBeUndefined();
    expect(JSON.stringify(grpcCluster.message)).not.toContain('transportSocket');
    const endpoints = grpc.find(
      (s) => s.typeUrl === TypeUrl.ClusterLoadAssignment && s.name === 'default/web/443',
    );
    expect(endpoints?.message).toEqual({ clusterName: 'default/web/443' });
  });
});

describe('gRPC flavour semantics', () => {
  const specs = translateIr(loadCase('grpc-flavor').ir, { flavor: 'grpc' });

  it('serves each concrete hostname once, the first IR listener by name winning; no wildcards', () => {
    const listeners = specs.filter((s) => s.typeUrl === TypeUrl.Listener).map((s) => s.name);
    expect(listeners).toEqual(['echo.example.com', 'web.example.com']);
    const rds = specs.find((s) => s.name === 'grpc/echo.example.com');
    // listener/0.0.0.0/50051 sorts before listener/0.0.0.0/8080, whose echo.example.com routes elsewhere.
    expect(JSON.stringify(rds?.message)).toContain('listener/0.0.0.0/50051/echo.example.com');
  });

  /** Which route (by IR route name) gRPC's matcher picks for a call, or undefined for none. */
  function pick(host: string, method: string, headers: Record<string, string> = {}): string | undefined {
    const spec = specs.find((s) => s.typeUrl === TypeUrl.RouteConfiguration && s.name === `grpc/${host}`);
    if (spec === undefined) throw new Error(`no route configuration for ${host}`);
    const config = decodeSingleResource(RDS_TYPE_URL, anyOf(spec).value);
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    const routes = config.virtual_hosts[0]?.routes ?? [];
    const route = routes.find(
      (r) => r.match !== null && getPredicateForMatcher(r.match).apply(method, metadata),
    );
    return route?.route?.cluster || route?.route?.weighted_clusters?.clusters.map((c) => c.name).join('+');
  }

  it('matches a segment prefix by segments', () => {
    expect(pick('echo.example.com', '/echo.Echo')).toBe('default/echo/9000+default/echo-canary/9000');
    expect(pick('echo.example.com', '/echo.Echo/Say')).toBe('default/echo/9000+default/echo-canary/9000');
    // Not a segment of /echo.Echo: falls through to the catch-all.
    expect(pick('echo.example.com', '/echo.EchoV2/Say')).toBe('default/echo/9000');
  });

  it('matches headers, and drops routes that can never match a gRPC call', () => {
    expect(pick('echo.example.com', '/echo.Echo/Admin', { 'x-role': 'admin' })).toBe(
      'default/echo-admin/9000+skein:unavailable',
    );
    expect(pick('echo.example.com', '/echo.Echo/Admin')).toBe('default/echo/9000+default/echo-canary/9000');
    // The GET-only and the query-parameter routes are gone: /echo.Echo/Get takes the POST route.
    expect(pick('echo.example.com', '/echo.Echo/Get')).toBe('default/echo/9000+default/echo-canary/9000');
  });

  it('fails calls a direct response would answer, through a cluster without endpoints', () => {
    expect(pick('echo.example.com', '/legacy.Svc/Call')).toBe('skein:unavailable');
    const cla = specs.find(
      (s) => s.typeUrl === TypeUrl.ClusterLoadAssignment && s.name === 'skein:unavailable',
    );
    expect(cla?.message).toEqual({ clusterName: 'skein:unavailable' });
  });

  it('sets the call deadline cap from the request timeout and nothing a client would ignore', () => {
    const text = JSON.stringify(specs.map((s) => s.message));
    expect(text).toContain('"maxStreamDuration":{"maxStreamDuration":{"seconds":2}}');
    // No per-try timeout, header mutations, or HCM idle timeout (grpc-js-xds would take the last one
    // as every call's default deadline).
    expect(text).not.toMatch(/perTryTimeout|HeadersTo|idleTimeout/);
  });

  it('emits the unavailable cluster only when a route uses it', () => {
    const plain = translateIr(loadCase('simple-http').ir, { flavor: 'grpc' });
    expect(plain.some((s) => s.name === 'skein:unavailable')).toBe(false);
    // simple-http has only the wildcard host: no gRPC listener at all, but the clusters are still there.
    expect(plain.map((s) => `${s.typeUrl.split('.').at(-1)} ${s.name}`)).toEqual([
      'Cluster default/web/80',
      'ClusterLoadAssignment default/web/80',
    ]);
  });

  it('shares cluster and endpoint specs with the Envoy flavour (same objects)', () => {
    const translator = createIrTranslator();
    const ir = loadCase('grpc-flavor').ir;
    const shared = (flavor: 'envoy' | 'grpc') =>
      translator
        .translate(ir, { flavor })
        .filter(
          (s) =>
            (s.typeUrl === TypeUrl.Cluster || s.typeUrl === TypeUrl.ClusterLoadAssignment) &&
            s.name !== 'skein:unavailable',
        );
    const envoy = shared('envoy');
    const grpc = shared('grpc');
    expect(envoy.length).toBe(6);
    expect(grpc.length).toBe(envoy.length);
    grpc.forEach((s, i) => {
      expect(s).toBe(envoy[i]);
    });
  });
});
