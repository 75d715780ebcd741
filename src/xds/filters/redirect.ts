import type { IrPathMatch, IrRedirectAction } from '../../model/ir.js';
import type { ProtoObject } from '../proto.js';
import { pathRewrite } from './rewrite.js';

/** The socket a route is served on, which a redirect's Location may depend on. */
export interface ListenerContext {
  readonly port: number;
  /** The scheme of requests on the listener: `https` on an HTTPS listener. */
  readonly scheme: 'http' | 'https';
}

const RESPONSE_CODE: Readonly<Record<IrRedirectAction['statusCode'], string>> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

const DEFAULT_PORT = { http: 80, https: 443 } as const;

/**
 * An IR redirect → Envoy's `RedirectAction`, which builds `Location` from the request: its scheme, its
 * Host header (with the port the client wrote there) and its path, each replaced where the action says.
 *
 * The port is the subtle part. The Location's port is the IR's `port`, or without one the listener's
 * (the Gateway API: "If redirect scheme is empty, the redirect port MUST be the Gateway Listener port"),
 * and it is left out of Location when it is the scheme's default (http 80, https 443), as the spec asks.
 * Envoy, though, drops the request's port whenever it writes `host_redirect`, and replaces it only when
 * told a `port_redirect`, which it always writes out. So:
 * - with a new hostname, `port_redirect` is written unless the port is the scheme's default;
 * - without one, Envoy keeps the Host header, port included, which is right when neither scheme nor
 *   port changes. Otherwise `port_redirect` replaces the request's port, except for a default port on
 *   a listener that is itself on its scheme's default port: the client wrote no port then (or the
 *   default one, which Envoy drops when the scheme changes), so leaving the Host alone gives the
 *   port-less Location. A default port after a listener on another port (`http://host:8080` to https)
 *   is written out (`https://host:443/`), which the conformance tests accept.
 *
 * `listener` is undefined where no socket is known (then an explicit port is all there is).
 */
export function redirectAction(
  a: IrRedirectAction,
  match: IrPathMatch,
  listener?: ListenerContext,
): ProtoObject {
  const scheme = a.scheme ?? listener?.scheme;
  const port = a.port ?? listener?.port;
  const isDefault = scheme !== undefined && port === DEFAULT_PORT[scheme];
  let portRedirect: number | undefined;
  if (a.hostname !== undefined) {
    portRedirect = isDefault ? undefined : port;
  } else if (a.port !== undefined || a.scheme !== undefined) {
    const hostHasNoPort = listener !== undefined && listener.port === DEFAULT_PORT[listener.scheme];
    portRedirect = isDefault && hostHasNoPort ? undefined : port;
  }
  return {
    ...(a.scheme === undefined ? {} : { schemeRedirect: a.scheme }),
    ...(a.hostname === undefined ? {} : { hostRedirect: a.hostname }),
    ...(portRedirect === undefined ? {} : { portRedirect }),
    ...(a.path === undefined ? {} : pathRewrite(a.path, match, 'redirect')),
    responseCode: RESPONSE_CODE[a.statusCode],
  };
}
