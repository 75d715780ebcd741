import type { IrCors } from '../../model/ir.js';
import { ExtensionType, type ProtoObject } from '../proto.js';
import { wrapped } from '../translate/protoValues.js';
import type { HttpFilter } from './httpFilter.js';

/**
 * CORS (IrRoute.cors, the Gateway API's CORS filter): Envoy's CORS filter in the chain, and each route's
 * policy in its `typed_per_filter_config`. Routes without a policy pass through the filter untouched.
 *
 * The filter is in the chain of every HTTP listener served to Envoy, whether or not a route has a
 * policy. It costs one per-route lookup per request; in exchange the listener does not depend on its
 * routes, so adding or removing a CORS policy is a route configuration update, never a listener update
 * (which would drain the listener's connections). gRPC's xDS clients do not implement it.
 *
 * What Envoy's filter does, and how it meets the Gateway API:
 * - It answers a preflight (OPTIONS with Origin and Access-Control-Request-Method) itself, 200. For an
 *   origin that is not allowed it answers too, without Access-Control-Allow-Origin
 *   (`forward_not_matching_preflights: false`), rather than passing the preflight to the backend.
 * - An allowed origin is always echoed back (never `*`), which the spec accepts for any request and
 *   requires for credentialed ones.
 * - `allow_methods` / `allow_headers` of `*` make Envoy echo the preflight's requested method / headers,
 *   which is what the spec asks when credentials are allowed and accepts otherwise.
 * - `expose_headers` is sent as written; a `*` there is sent as `*`, which browsers ignore on
 *   credentialed requests (the spec would have the gateway list the response's headers instead).
 * - On actual requests it adds Access-Control-Allow-Origin (and -Credentials, -Expose-Headers) to the
 *   response when the origin is allowed, and nothing otherwise.
 */
export const corsFilter: HttpFilter = {
  name: 'envoy.filters.http.cors',
  enabled: (_listener, flavor) => flavor === 'envoy',
  typedConfig: () => ({ '@type': ExtensionType.Cors }),
  perRoute: (r) => (r.cors === undefined ? undefined : corsPolicy(r.cors)),
};

function corsPolicy(c: IrCors): ProtoObject {
  const list = (items: readonly string[]) => items.join(', ');
  return {
    '@type': ExtensionType.CorsPolicy,
    ...(c.allowOrigins.length > 0 ? { allowOriginStringMatch: c.allowOrigins.map(originMatcher) } : {}),
    ...(c.allowMethods.length > 0 ? { allowMethods: list(c.allowMethods) } : {}),
    ...(c.allowHeaders.length > 0 ? { allowHeaders: list(c.allowHeaders) } : {}),
    ...(c.exposeHeaders.length > 0 ? { exposeHeaders: list(c.exposeHeaders) } : {}),
    ...(c.maxAgeSeconds === undefined ? {} : { maxAge: String(c.maxAgeSeconds) }),
    ...(c.allowCredentials ? { allowCredentials: wrapped(true) } : {}),
    forwardNotMatchingPreflights: wrapped(false),
  };
}

const DEFAULT_PORT: Readonly<Record<string, string>> = { http: '80', https: '443' };

/**
 * One allowed origin as an Envoy string matcher (matched against the request's Origin, case-insensitively
 * as origins compare):
 * - `*`: the matcher for `*`, which Envoy takes as "any origin";
 * - `https://a.example.com` (or `https://a.example.com:443`): that origin, as browsers send it (they
 *   never write the scheme's default port);
 * - `https://*.example.com`: a regular expression in which the `*` stands for one or more DNS labels
 *   (never the empty string or anything with `/` or `:`), per the spec's "greedy match to the left",
 *   with the default port allowed written out.
 * An origin without a port means the scheme's default port, as the spec says, and no other.
 */
export function originMatcher(origin: string): ProtoObject {
  if (origin === '*') return { exact: '*' };
  const m = /^(https?):\/\/([^:/]+)(?::(\d+))?$/.exec(origin);
  if (m === null) return { exact: origin, ignoreCase: true };
  const [, scheme = '', host = '', port] = m;
  const defaultPort = DEFAULT_PORT[scheme];
  const portPart = port === undefined || port === defaultPort ? `(:${defaultPort})?` : `:${port}`;
  if (!host.includes('*')) {
    return {
      exact: portPart.startsWith('(') ? `${scheme}://${host}` : `${scheme}://${host}:${port}`,
      ignoreCase: true,
    };
  }
  const hostPattern = host
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)*');
  return { safeRegex: { regex: `(?i)${scheme}://${hostPattern}${portPart}` } };
}
