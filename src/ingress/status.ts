import { isIP } from 'node:net';
import { type Condition, condition, generationOf, sortConditions } from '../gateway/conditions.js';
import { type Diagnostic, type ObjectStatus, objectKey } from '../sources/objects.js';
import type { IngressProblem } from './codes.js';
import type { TranslatedIngress } from './ingressRules.js';
import type { IngressSocket } from './sockets.js';

export const INGRESS_API_VERSION = 'networking.k8s.io/v1';

/** Where the Ingress ended up: the sockets it holds, and which of them became listeners. */
export interface Served {
  readonly http: IngressSocket | undefined;
  readonly https: IngressSocket | undefined;
  readonly programmed: ReadonlySet<string>;
  /**
   * Sockets that became listeners but do not serve this Ingress after all (a Gateway took them or every
   * host it has there; see mergeConflicts.ts), with why, or undefined when a problem already says why.
   */
  readonly lost?: ReadonlyMap<string, string | undefined>;
}

/**
 * Step 9: the status of one of our Ingresses.
 *
 * `status.loadBalancer.ingress` is what the API defines: the address that serves the Ingress, one a
 * client can use. That is its `ingress.skein.io/address`, else the configured status address, else the
 * configured listen address, but never an unspecified address (0.0.0.0, ::), which names no host:
 * bound there with no status address configured, the Ingress reports no address until one is known.
 * An IP goes in `ip`, a name in `hostname`. Nothing while no listener serves the Ingress.
 *
 * networking.k8s.io/v1 has no conditions on an Ingress, so `status.conditions` is Skein's own report,
 * in the Gateway API's shape (shown by `skein translate --show status` and the status server; a
 * Kubernetes status writer writes `loadBalancer` only, as the API server would drop the rest):
 *
 * - `Accepted`: always True for an Ingress of our class;
 * - `ResolvedRefs`: False while a backend or a TLS Secret does not resolve, naming each (host and
 *   Secret for TLS);
 * - `Programmed`: which sockets serve it; False when none does;
 * - `PartiallyInvalid` (only when True): annotations and paths that were ignored;
 * - `Conflicted` (only when True): certificate hosts or default backends another Ingress holds.
 */
export function ingressStatus(
  t: TranslatedIngress,
  problems: readonly IngressProblem[],
  served: Served,
  opts: {
    readonly controllerName: string;
    readonly statusAddress: string | undefined;
    readonly transitionTime: string;
  },
): ObjectStatus {
  const ctx = { generation: generationOf(t.ingress), transitionTime: opts.transitionTime };
  const of = (c: IngressProblem['condition']) => problems.filter((p) => p.condition === c);
  const conditions: Condition[] = [
    condition(
      ctx,
      'Accepted',
      true,
      'Accepted',
      `IngressClass ${t.className} is served by ${opts.controllerName}`,
    ),
  ];

  const refs = of('ResolvedRefs');
  conditions.push(
    refs.length === 0
      ? condition(ctx, 'ResolvedRefs', true, 'ResolvedRefs', 'all references resolved')
      : condition(ctx, 'ResolvedRefs', false, (refs[0] as IngressProblem).reason, join(refs)),
  );

  const at = (s: IngressSocket) => `${s.address}:${s.port} (${s.protocol})`;
  const lost = served.lost;
  const servedAt = [served.http, served.https].filter(
    (s): s is IngressSocket => s !== undefined && served.programmed.has(s.name) && lost?.has(s.name) !== true,
  );
  const notServed: string[] = of('Programmed').map((p) => p.message);
  if (served.https !== undefined && !served.programmed.has(served.https.name)) {
    notServed.push(
      `HTTPS on ${served.https.address}:${served.https.port} is not served: no valid certificate there`,
    );
  }
  if (served.http !== undefined && !served.programmed.has(served.http.name)) {
    notServed.push(`HTTP on ${served.http.address}:${served.http.port} is not served: no path to serve`);
  }
  for (const why of lost?.values() ?? []) if (why !== undefined) notServed.push(why);
  const rest = notServed.length === 0 ? '' : `; ${notServed.join('; ')}`;
  conditions.push(
    servedAt.length > 0
      ? condition(ctx, 'Programmed', true, 'Programmed', `served at ${servedAt.map(at).join(', ')}${rest}`)
      : condition(
          ctx,
          'Programmed',
          false,
          of('Programmed').length > 0
            ? 'PortUnavailable'
            : lost !== undefined && lost.size > 0
              ? 'HostnameConflict'
              : 'Invalid',
          notServed.length === 0 ? 'not served: nothing to serve' : notServed.join('; '),
        ),
  );

  const partial = of('PartiallyInvalid');
  if (partial.length > 0)
    conditions.push(condition(ctx, 'PartiallyInvalid', true, 'UnsupportedValue', join(partial)));
  const conflicts = of('Conflicted');
  if (conflicts.length > 0) {
    conditions.push(
      condition(ctx, 'Conflicted', true, (conflicts[0] as IngressProblem).reason, join(conflicts)),
    );
  }

  const listen = unspecified(t.settings.address) ? undefined : t.settings.address;
  const address = t.settings.addressAnnotated
    ? (listen ?? opts.statusAddress)
    : (opts.statusAddress ?? listen);
  const entry =
    address === undefined ? undefined : isIP(address) !== 0 ? { ip: address } : { hostname: address };
  return {
    apiVersion: INGRESS_API_VERSION,
    kind: 'Ingress',
    namespace: t.namespace,
    name: t.name,
    status: {
      loadBalancer: servedAt.length > 0 && entry !== undefined ? { ingress: [entry] } : {},
      conditions: sortConditions(conditions),
    },
  };
}

/** 0.0.0.0 and :: (in any spelling): every address of the host, which no client can connect to by. */
function unspecified(address: string): boolean {
  return isIP(address) === 4 ? address === '0.0.0.0' : isIP(address) === 6 && /^[0:]+$/.test(address);
}

function join(problems: readonly IngressProblem[]): string {
  return problems.map((p) => p.message).join('; ');
}

/** Each problem as a diagnostic (the log line), naming the Ingress, its file and the field. */
export function problemDiagnostics(
  t: TranslatedIngress,
  problems: readonly IngressProblem[],
  origins: ReadonlyMap<string, string>,
): Diagnostic[] {
  const object = objectKey('Ingress', t.namespace, t.name);
  const origin = origins.get(object);
  return problems.map((p) => ({
    code: p.code,
    severity: 'warning',
    ...(origin === undefined ? {} : { origin }),
    object,
    field: p.field,
    message: p.message,
  }));
}
