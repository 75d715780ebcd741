import { type IrConflict, MERGE_CONFLICT } from '../model/merge.js';
import type { IngressProblem } from './codes.js';
import { ANY_HOST } from './hosts.js';
import type { TranslatedIngress } from './ingressRules.js';
import type { Binding, IngressSocket } from './sockets.js';

/**
 * What Ingresses lost when their IR met the Gateway API's in src/model/merge.ts, where the Gateway API
 * wins: a socket a Gateway listener of another protocol holds, a hostname a Gateway listener serves on
 * a shared socket, a certificate server name a Gateway's certificate takes.
 */
export interface MergeLosses {
  /** Problems for each Ingress's status (and diagnostics naming it). */
  readonly problems: ReadonlyMap<TranslatedIngress, readonly IngressProblem[]>;
  /**
   * Per Ingress, the sockets (listener names) that no longer serve it, with why, or undefined when a
   * `Programmed` problem already says why.
   */
  readonly lost: ReadonlyMap<TranslatedIngress, ReadonlyMap<string, string | undefined>>;
  /** The conflicts that concern no Ingress (backends, secrets of one name with other content). */
  readonly unmatched: readonly IrConflict[];
}

/**
 * Maps merge conflicts back to the Ingresses they concern. A conflict names the socket and the hostname
 * that lost; the binding says which Ingresses claimed that socket and which of them name that host.
 */
export function mergeLosses(conflicts: readonly IrConflict[], binding: Binding): MergeLosses {
  const problems = new Map<TranslatedIngress, IngressProblem[]>();
  const lost = new Map<TranslatedIngress, Map<string, string | undefined>>();
  /** Per Ingress and socket, the hosts (of those it has there) it lost. */
  const lostHosts = new Map<TranslatedIngress, Map<string, Set<string>>>();
  const unmatched: IrConflict[] = [];
  let matched = false;
  const report = (m: TranslatedIngress, p: IngressProblem): void => {
    matched = true;
    const list = problems.get(m);
    if (list === undefined) problems.set(m, [p]);
    else list.push(p);
  };

  for (const c of conflicts) {
    const socket = c.listener === undefined ? undefined : binding.sockets.get(c.listener);
    matched = false;
    if (socket !== undefined) {
      const at = `${socket.address}:${socket.port}`;
      if (c.kind === 'listener') {
        for (const m of socket.members) {
          report(m, {
            code: MERGE_CONFLICT,
            condition: 'Programmed',
            reason: 'PortUnavailable',
            field: portField(socket),
            message: `${socket.protocol} on ${at} is not served: a Gateway listener serves another protocol there (the Gateway API's listeners come first)`,
          });
          mapOf(lost, m).set(socket.name, undefined);
        }
      } else if (c.kind === 'virtualHost' && c.hostname !== undefined) {
        const host = c.hostname.toLowerCase();
        for (const m of socket.members) {
          if (!hostsOn(m, socket).has(host)) continue;
          let hosts = mapOf(lostHosts, m).get(socket.name);
          if (hosts === undefined) {
            hosts = new Set();
            mapOf(lostHosts, m).set(socket.name, hosts);
          }
          hosts.add(host);
          report(m, {
            code: MERGE_CONFLICT,
            condition: 'Conflicted',
            reason: 'HostnameConflict',
            field: hostField(m, host),
            message:
              host === ANY_HOST
                ? `on ${at} (${socket.protocol}) a Gateway listener without hostname takes every host no Ingress names (the Gateway API wins): this Ingress's rules without host and its default backend serve only the hosts the Ingresses there name`
                : `host ${host} on ${at} (${socket.protocol}) is served by a Gateway listener (the Gateway API wins): this Ingress's rules for it are not served there`,
          });
        }
      } else if (c.kind === 'certificate') {
        const secrets = new Set(c.name.split(','));
        const host = c.hostname?.toLowerCase();
        for (const m of socket.members) {
          for (const e of m.tls) {
            if (e.secret === undefined || !secrets.has(e.secret.name)) continue;
            if (host === undefined ? e.hosts.length > 0 : !e.hosts.includes(host)) continue;
            report(m, {
              code: MERGE_CONFLICT,
              condition: 'Conflicted',
              reason: 'HostnameConflict',
              field: `spec.tls[${e.index}]`,
              message: `spec.tls[${e.index}]: ${host === undefined ? 'server names no certificate lists' : `host ${host}`} on ${at} ${host === undefined ? 'are' : 'is'} served with a Gateway's certificate, not with Secret ${e.secret.name} (the Gateway API wins)`,
            });
          }
        }
      }
    }
    if (!matched) unmatched.push(c);
  }

  // An Ingress that lost every host it has on a socket is not served there at all.
  for (const [m, bySocket] of lostHosts) {
    for (const [name, hosts] of bySocket) {
      const socket = binding.sockets.get(name) as IngressSocket;
      const all = hostsOn(m, socket);
      if ([...all].every((h) => hosts.has(h)) && !lost.get(m)?.has(name)) {
        mapOf(lost, m).set(
          name,
          `${socket.protocol} on ${socket.address}:${socket.port} is not served: Gateway listeners serve every host it has there`,
        );
      }
    }
  }
  return { problems, lost, unmatched };
}

/** The hosts an Ingress has on a socket: its rules' and (on HTTPS) its TLS entries'; `*` for host-less rules and the default backend. */
function hostsOn(m: TranslatedIngress, socket: IngressSocket): Set<string> {
  const hosts = new Set<string>(m.hosts.keys());
  if (m.defaultRoute !== undefined) hosts.add(ANY_HOST);
  if (socket.protocol === 'HTTPS') for (const e of m.tls) for (const h of e.hosts) hosts.add(h);
  return hosts;
}

/** The field that names `host` in the Ingress: its first rule with that host, or its TLS entry. */
function hostField(m: TranslatedIngress, host: string): string {
  const rules = m.ingress.spec?.rules ?? [];
  const i = rules.findIndex((r) =>
    host === ANY_HOST ? r.host === undefined || r.host === '' : r.host?.toLowerCase() === host,
  );
  if (i >= 0) return `spec.rules[${i}].host`;
  if (host === ANY_HOST) return 'spec.defaultBackend';
  const e = m.tls.find((t) => t.hosts.includes(host));
  return e === undefined ? 'spec.rules' : `spec.tls[${e.index}].hosts`;
}

function portField(socket: IngressSocket): string {
  return socket.protocol === 'HTTP'
    ? 'metadata.annotations[ingress.skein.io/http-port]'
    : 'metadata.annotations[ingress.skein.io/https-port]';
}

function mapOf<K, V>(outer: Map<TranslatedIngress, Map<K, V>>, m: TranslatedIngress): Map<K, V> {
  let inner = outer.get(m);
  if (inner === undefined) {
    inner = new Map();
    outer.set(m, inner);
  }
  return inner;
}
