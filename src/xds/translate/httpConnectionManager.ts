import type { IrListener } from '../../model/ir.js';
import { httpFilters } from '../filters/index.js';
import { ExtensionType, type ProtoObject } from '../proto.js';
import { adsConfigSource, durationMs, wrapped } from './protoValues.js';

/** The network filter name of the HTTP connection manager. */
export const HTTP_CONNECTION_MANAGER = 'envoy.filters.network.http_connection_manager';

/**
 * One line per request on Envoy's stdout, compact enough to read in `kubectl logs`: who asked for what,
 * the answer, why Envoy answered the way it did (response flags, e.g. `UH` no healthy upstream), how
 * long it took, and which route, cluster and host served it.
 */
export const ACCESS_LOG_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(:AUTHORITY)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ' +
  '%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%ms ' +
  'route=%ROUTE_NAME% upstream=%UPSTREAM_CLUSTER% host=%UPSTREAM_HOST%\n';

/**
 * How long a downstream connection with no active request stays open. Explicit rather than Envoy's
 * default so it shows in config dumps; one hour is Envoy's edge best-practice value.
 */
const IDLE_TIMEOUT_MS = 3_600_000;

/** The HTTP connection manager of a socket listener served to Envoy, routes over RDS. */
export function envoyHttpConnectionManager(l: IrListener, routeConfigName: string): ProtoObject {
  return {
    '@type': ExtensionType.HttpConnectionManager,
    statPrefix: statPrefix(l.name),
    rds: { configSource: adsConfigSource, routeConfigName },
    httpFilters: httpFilters(l, 'envoy'),
    // Route on the path the backend will see, so that a path cannot reach a backend while dodging the
    // route (and the policy) written for it: `/a/../admin` is `/admin` (RFC 3986 normalisation), `//admin`
    // is `/admin`, and an escaped slash (`%2F`, `%5C`) gets a redirect to the unescaped path, so client,
    // router and backend all agree on the segments.
    normalizePath: wrapped(true),
    mergeSlashes: true,
    pathWithEscapedSlashesAction: 'UNESCAPE_AND_REDIRECT',
    // A gateway is the edge: the client is the peer of the connection, not whatever X-Forwarded-For
    // claims. Envoy then appends the peer to XFF and sets X-Envoy-External-Address.
    useRemoteAddress: wrapped(true),
    accessLog: [
      {
        name: 'envoy.access_loggers.stdout',
        typedConfig: {
          '@type': ExtensionType.StdoutAccessLog,
          logFormat: { textFormatSource: { inlineString: ACCESS_LOG_FORMAT } },
        },
      },
    ],
    commonHttpProtocolOptions: { idleTimeout: durationMs(IDLE_TIMEOUT_MS) },
  };
}

/**
 * The HTTP connection manager inside a proxyless gRPC client's api_listener. Only what those clients
 * read: RDS over ADS and the filter chain. In particular no `common_http_protocol_options.idle_timeout`:
 * grpc-js-xds takes it as the default deadline of every call.
 */
export function grpcHttpConnectionManager(
  routeConfigName: string,
  filters: readonly ProtoObject[],
): ProtoObject {
  return {
    '@type': ExtensionType.HttpConnectionManager,
    rds: { configSource: adsConfigSource, routeConfigName },
    httpFilters: filters,
  };
}

/**
 * Envoy stat names use `.` as the separator, and `/`, `:` and brackets upset stats sinks; every other
 * character becomes `_` (`listener/0.0.0.0/8080` → `listener_0_0_0_0_8080`). Listener names are unique
 * and this keeps their length, so prefixes only collide in contrived cases, which would merge stats.
 */
export function statPrefix(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]/g, '_');
}
