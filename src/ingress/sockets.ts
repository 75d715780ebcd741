import type { ReservedSocket } from '../gateway/listeners.js';
import type { IrListenerProtocol } from '../model/ir.js';
import { listenerName } from '../model/names.js';
import { IngressCode, type IngressProblem } from './codes.js';
import type { TranslatedIngress } from './ingressRules.js';

/** One socket (address and port) that Ingresses listen on, and the Ingresses it serves. */
export interface IngressSocket {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: Extract<IrListenerProtocol, 'HTTP' | 'HTTPS'>;
  /** The socket belongs to one `dedicated` Ingress alone. */
  readonly dedicated: boolean;
  /** In precedence order (oldest first, then namespace/name). */
  readonly members: TranslatedIngress[];
}

export interface Binding {
  /** By name. */
  readonly sockets: ReadonlyMap<string, IngressSocket>;
  readonly http: ReadonlyMap<TranslatedIngress, IngressSocket>;
  /** Only Ingresses with `spec.tls` claim an HTTPS socket. */
  readonly https: ReadonlyMap<TranslatedIngress, IngressSocket>;
  readonly problems: ReadonlyMap<TranslatedIngress, readonly IngressProblem[]>;
}

/**
 * Step 5: every Ingress claims an HTTP socket (its address and http port) and, if it has `spec.tls`, an
 * HTTPS socket (its address and https port). Ingresses go in precedence order (oldest first, then by
 * namespace/name), and the first claim on a socket decides it:
 *
 * - `shared` Ingresses on one socket share its listener (their hosts merge into its virtual hosts);
 * - a `dedicated` Ingress wants a socket of its own: a claim on a socket someone already uses fails,
 *   and so does every later claim on a socket a dedicated Ingress holds;
 * - a socket serves one protocol: an HTTP claim on another Ingress's HTTPS socket (or the reverse) fails.
 *
 * - a reserved socket (Envoy's admin port, Skein's status port), or the same port on the any-address,
 *   cannot be claimed at all.
 *
 * A failed claim is reported (Programmed, PortUnavailable) and that part of the Ingress is not served.
 */
export function bindSockets(
  ingresses: readonly TranslatedIngress[],
  reserved: readonly ReservedSocket[] = [],
): Binding {
  const sockets = new Map<string, IngressSocket>();
  const http = new Map<TranslatedIngress, IngressSocket>();
  const https = new Map<TranslatedIngress, IngressSocket>();
  const problems = new Map<TranslatedIngress, IngressProblem[]>();
  const claim = (ing: TranslatedIngress, protocol: 'HTTP' | 'HTTPS'): void => {
    const { address, mode } = ing.settings;
    const port = protocol === 'HTTP' ? ing.settings.httpPort : ing.settings.httpsPort;
    const name = listenerName(address, port);
    const socket = sockets.get(name);
    const dedicated = mode === 'dedicated';
    const at = `${address}:${port}`;
    const why = conflictOf(socket, { protocol, dedicated, address, port }, reserved);
    if (why === undefined) {
      if (socket === undefined)
        sockets.set(name, { name, address, port, protocol, dedicated, members: [ing] });
      else socket.members.push(ing);
      (protocol === 'HTTP' ? http : https).set(ing, sockets.get(name) as IngressSocket);
      return;
    }
    let list = problems.get(ing);
    if (list === undefined) {
      list = [];
      problems.set(ing, list);
    }
    list.push({
      code: IngressCode.Conflict,
      condition: 'Programmed',
      reason: 'PortUnavailable',
      field:
        protocol === 'HTTP'
          ? 'metadata.annotations[ingress.skein.io/http-port]'
          : 'metadata.annotations[ingress.skein.io/https-port]',
      message: `${protocol} on ${at} is not served: ${why}${protocol === 'HTTPS' ? '; the hosts of spec.tls get 503 over plain HTTP' : ''}`,
    });
  };
  for (const ing of ingresses) {
    claim(ing, 'HTTP');
    if (ing.tls.length > 0) claim(ing, 'HTTPS');
  }
  return { sockets, http, https, problems };
}

/** Why a claim on a socket fails, or undefined when it succeeds. */
function conflictOf(
  socket: IngressSocket | undefined,
  claim: { protocol: 'HTTP' | 'HTTPS'; dedicated: boolean; address: string; port: number },
  reserved: readonly ReservedSocket[],
): string | undefined {
  const { protocol, dedicated, address, port } = claim;
  const at = `${address}:${port}`;
  const taken = reserved.find(
    (r) => r.port === port && (r.address === address || address === '0.0.0.0' || address === '::'),
  );
  if (taken !== undefined) return `${taken.address}:${taken.port} is taken by ${taken.holder}`;
  if (socket === undefined) return undefined;
  const holder = socket.members[0] as TranslatedIngress;
  const who = `Ingress ${holder.namespace}/${holder.name}`;
  if (socket.protocol !== protocol) return `${at} serves ${socket.protocol} for ${who}`;
  if (socket.dedicated) return `${at} is dedicated to ${who}`;
  if (dedicated) {
    return `this Ingress is dedicated (ingress.skein.io/loadbalancer-mode), but ${who} already listens on ${at}`;
  }
  return undefined;
}
