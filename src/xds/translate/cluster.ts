import type { IrBackend, IrEndpoint, IrUpstreamTls } from '../../model/ir.js';
import { ExtensionType, type ProtoObject, TypeUrl } from '../proto.js';
import type { ResourceSpec } from '../resource.js';
import type { XdsFlavor } from './flavor.js';
import { adsConfigSource, durationMs, endpointsKey, wrapped } from './protoValues.js';

/** How long Envoy waits for a TCP connection to a backend before trying another host. */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * One IR backend → an EDS Cluster and its ClusterLoadAssignment. The same specs serve Envoy and
 * proxyless gRPC clients (identical content, so the encoder shares the bytes), so both messages stay
 * within what gRPC's xDS clients accept.
 *
 * Except for backends with TLS (BackendTLSPolicy): Envoy gets the trusted CAs inline, which gRPC's xDS
 * clients refuse (they take CAs only from certificate providers named in their own bootstrap, which
 * Skein does not configure). So the gRPC flavour gets the cluster without TLS and without endpoints:
 * calls to it fail with UNAVAILABLE, and never go out in clear text.
 */
export function translateBackend(b: IrBackend, flavor: XdsFlavor = 'envoy'): ResourceSpec[] {
  if (b.originalDestination !== undefined) return [originalDestinationCluster(b)];
  if (flavor === 'grpc' && b.tls !== undefined) {
    const { tls: _tls, ...plain } = b;
    return [cluster({ ...plain, endpoints: [] }), clusterLoadAssignment(b.name, [])];
  }
  return [cluster(b), clusterLoadAssignment(b.name, b.endpoints)];
}

/** HTTP/2 without TLS, with prior knowledge (no upgrade dance), as gRPC backends speak it. */
const h2cProtocolOptions: ProtoObject = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': ExtensionType.HttpProtocolOptions,
    explicitHttpConfig: { http2ProtocolOptions: {} },
  },
};

function cluster(b: IrBackend): ResourceSpec {
  const message: ProtoObject = {
    name: b.name,
    type: 'EDS',
    // The EDS resource is named after the cluster: one backend, one endpoint set.
    edsClusterConfig: { edsConfig: adsConfigSource, serviceName: b.name },
    connectTimeout: durationMs(CONNECT_TIMEOUT_MS),
    lbPolicy: 'ROUND_ROBIN',
    // Envoy's panic mode (by default below 50% healthy hosts) balances over all hosts, unhealthy ones
    // included. Unhealthy here means "not ready" in Kubernetes, hosts that must not get traffic, so panic
    // mode is off: with no ready host Envoy answers 503 instead of sending to a pod that is not ready.
    commonLbConfig: { healthyPanicThreshold: { value: 0 } },
    ...(b.protocol === 'h2c' ? { typedExtensionProtocolOptions: h2cProtocolOptions } : {}),
    ...(b.tls === undefined ? {} : { transportSocket: upstreamTls(b.tls, b.protocol) }),
  };
  return { typeUrl: TypeUrl.Cluster, name: b.name, message, deps: [], children: [endpointsKey(b.name)] };
}

/** SOL_SOCKET and SO_MARK (asm-generic/socket.h): Envoy sets socket options by number. */
const SOL_SOCKET = 1;
const SO_MARK = 36;

/**
 * The original-destination backend: an ORIGINAL_DST cluster, whose hosts are the destinations of the
 * downstream connections themselves. The transparent listener puts each connection's local address in
 * the filter state `envoy.network.transport_socket.original_dst_address` (see listener.ts), which this
 * cluster reads before anything else; there is no NAT, so no SO_ORIGINAL_DST to fall back on. No EDS:
 * the cluster has no children. The upstream mark is set before connect (SO_MARK needs CAP_NET_ADMIN).
 */
function originalDestinationCluster(b: IrBackend): ResourceSpec {
  const mark = b.originalDestination?.upstreamMark;
  const message: ProtoObject = {
    name: b.name,
    type: 'ORIGINAL_DST',
    connectTimeout: durationMs(CONNECT_TIMEOUT_MS),
    lbPolicy: 'CLUSTER_PROVIDED',
    // The redirected client chose the protocol (HTTP/1.1, or h2c for gRPC), and the original destination
    // speaks what its client speaks: upstream follows the downstream connection's protocol.
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': ExtensionType.HttpProtocolOptions,
        useDownstreamProtocolConfig: { httpProtocolOptions: {}, http2ProtocolOptions: {} },
      },
    },
    ...(mark === undefined
      ? {}
      : {
          upstreamBindConfig: {
            socketOptions: [
              {
                description: 'SO_MARK: the policy datapath passes the proxy its own connections',
                level: SOL_SOCKET,
                name: SO_MARK,
                intValue: mark,
                state: 'STATE_PREBIND',
              },
            ],
          },
        }),
  };
  return { typeUrl: TypeUrl.Cluster, name: b.name, message, deps: [], children: [] };
}

/**
 * Where Envoy finds the platform's trust store when the IR asks for it (`trust: system`): Envoy has no
 * setting for "the system's CAs", only a file, and this is its path on Debian, Ubuntu, Alpine and Arch
 * (Red Hat systems have it at /etc/pki/tls/certs/ca-bundle.crt). Envoy reads the file, not Skein. The
 * Gateway API translator never asks for it (it reports wellKnownCACertificates as unsupported).
 */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * TLS from Envoy to a backend (BackendTLSPolicy): SNI, the trusted CAs inline, and the names the
 * backend's certificate must carry (its `subjectAltNames`, else the SNI as a DNS name). Envoy checks
 * the chain against the CAs and at least one name; a mismatch fails the connection (503). ALPN offers
 * the protocol the cluster speaks, for backends that pick HTTP/2 by ALPN.
 */
function upstreamTls(tls: IrUpstreamTls, protocol: IrBackend['protocol']): ProtoObject {
  const names =
    tls.subjectAltNames.length > 0 ? tls.subjectAltNames : [{ kind: 'Hostname' as const, value: tls.sni }];
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': ExtensionType.UpstreamTlsContext,
      sni: tls.sni,
      commonTlsContext: {
        ...(protocol === 'h2c'
          ? { alpnProtocols: ['h2'] }
          : protocol === 'http1'
            ? { alpnProtocols: ['http/1.1'] }
            : {}),
        validationContext: {
          trustedCa:
            tls.trust.kind === 'pem' ? { inlineString: tls.trust.pem } : { filename: SYSTEM_CA_BUNDLE },
          matchTypedSubjectAltNames: names.map((n) => ({
            sanType: n.kind === 'URI' ? 'URI' : 'DNS',
            matcher: { exact: n.value },
          })),
        },
      },
    },
  };
}

/**
 * The endpoints, always sent, even when there are none: a cluster without its load assignment stays
 * warming in Envoy, while an empty one answers 503 (no healthy upstream) at once.
 */
function clusterLoadAssignment(name: string, endpoints: readonly IrEndpoint[]): ResourceSpec {
  const lbEndpoints = uniqueEndpoints(endpoints).map((e) => ({
    endpoint: { address: { socketAddress: { address: e.address, portValue: e.port } } },
    // Not ready: Envoy keeps the host but sends it nothing (panic mode is off, see the cluster), and
    // gRPC clients skip it. Ready ones are HEALTHY rather than UNKNOWN so that the state reads plainly.
    healthStatus: e.ready ? 'HEALTHY' : 'UNHEALTHY',
  }));
  const message: ProtoObject = {
    clusterName: name,
    ...(lbEndpoints.length > 0
      ? {
          // gRPC's xDS clients reject a locality group without `locality` and skip one without a weight;
          // Envoy ignores both unless locality-weighted balancing is on. One group holds every endpoint.
          endpoints: [{ locality: {}, loadBalancingWeight: wrapped(1), lbEndpoints }],
        }
      : {}),
  };
  return { typeUrl: TypeUrl.ClusterLoadAssignment, name, message, deps: [], children: [] };
}

/**
 * gRPC's xDS clients reject an assignment that lists one address twice, so duplicates (which the IR
 * should not have) collapse into one entry, ready if any of them is.
 */
function uniqueEndpoints(endpoints: readonly IrEndpoint[]): IrEndpoint[] {
  const byAddress = new Map<string, IrEndpoint>();
  for (const e of endpoints) {
    const key = `${e.address} ${e.port}`;
    const seen = byAddress.get(key);
    if (seen === undefined || (!seen.ready && e.ready)) byAddress.set(key, e);
  }
  return [...byAddress.values()];
}

/**
 * The cluster that proxyless gRPC routes use in place of a direct response (see UNAVAILABLE_CLUSTER in
 * route.ts): no endpoints, so every call routed to it fails with UNAVAILABLE.
 */
export function unavailableBackend(name: string): IrBackend {
  return { name, protocol: 'h2c', endpoints: [] };
}
