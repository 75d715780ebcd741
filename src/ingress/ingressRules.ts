import type { BackendIndex, BackendRefHolder } from '../gateway/backends.js';
import { checkSecret } from '../gateway/certificates.js';
import { createdMs } from '../gateway/precedence.js';
import type { IrPathMatch, IrRoute, IrRouteAction, IrSecret } from '../model/ir.js';
import { ingressRouteName, routeName } from '../model/names.js';
import { validRegex } from '../model/validate.js';
import type { Ingress, Secret, Service } from '../sources/objects.js';
import { type IngressDefaults, type IngressSettings, readSettings } from './annotations.js';
import { IngressCode, type IngressProblem } from './codes.js';
import { ANY_HOST } from './hosts.js';

/** A route with what orders it among the routes of one host (see compareRanked). */
export interface RankedRoute {
  readonly route: IrRoute;
  /** 0 Exact, 1 ImplementationSpecific (regular expression), 2 Prefix. */
  readonly pathRank: number;
  readonly pathLength: number;
  readonly rule: number;
  readonly path: number;
}

/** One `spec.tls` entry: its hosts (empty: every host of the Ingress) and its Secret, if valid. */
export interface TlsEntry {
  readonly index: number;
  readonly hosts: readonly string[];
  /** `namespace/name` of the Secret named. */
  readonly secretRef: string;
  /** The certificate, when the Secret exists and holds a usable one. */
  readonly secret: IrSecret | undefined;
}

/** One Ingress on its own: what it asks for, before it meets the other Ingresses on its sockets. */
export interface TranslatedIngress {
  readonly ingress: Ingress;
  readonly namespace: string;
  readonly name: string;
  readonly className: string;
  readonly createdMs: number;
  readonly settings: IngressSettings;
  /** Routes by host (`*` for rules without host), each list in precedence order. */
  readonly hosts: ReadonlyMap<string, readonly RankedRoute[]>;
  /** spec.defaultBackend as a `/` prefix route. */
  readonly defaultRoute: IrRoute | undefined;
  readonly tls: readonly TlsEntry[];
  /** Problems found in the Ingress alone (annotations, paths, backends, Secrets). */
  readonly problems: readonly IngressProblem[];
}

/** What one Ingress's translation reads besides the Ingress. */
export interface IngressContext {
  readonly backends: BackendIndex;
  readonly services: ReadonlyMap<string, Service>;
  readonly secrets: ReadonlyMap<string, Secret>;
  readonly defaults: IngressDefaults;
}

type IngressBackendSpec = NonNullable<NonNullable<Ingress['spec']>['defaultBackend']>;

/** What requests get when a path's backend does not resolve (ingress-nginx answers the same). */
export const UNRESOLVED_BACKEND_STATUS = 503;

/**
 * Step 4: one Ingress translated alone. Paths become IR routes named after their rule and path:
 *
 * - `Exact`: the path exactly (case-sensitive, no trailing slash magic);
 * - `Prefix`: element-wise (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`), a trailing slash
 *   ignored (`/foo/` is `/foo`): the IR's PathPrefix;
 * - `ImplementationSpecific`: a regular expression (RE2) that must match the whole path; an empty path
 *   matches every path. One that does not compile is reported and not served.
 *
 * Within a host the routes are ordered as the Ingress spec asks: Exact first, then (our choice)
 * regular expressions, then Prefix; within each the longest path first; then rule and path order.
 * A backend that does not resolve is reported and its paths answer 503. The annotations' settings
 * (timeout, backend protocol) apply to every route.
 */
export function translateOne(ingress: Ingress, className: string, ctx: IngressContext): TranslatedIngress {
  const namespace = ingress.metadata?.namespace ?? 'default';
  const name = ingress.metadata?.name ?? '';
  const { settings, problems } = readSettings(ingress, ctx.defaults);
  const holder: BackendRefHolder = {
    kind: 'Ingress',
    speaks: settings.backendProtocol === 'h2c' ? 'h2c' : 'http',
  };
  const timeouts =
    settings.requestTimeoutMs === undefined ? {} : { timeouts: { requestMs: settings.requestTimeoutMs } };

  const action = (backend: IngressBackendSpec, field: string): IrRouteAction => {
    const resolved = resolveBackend(backend, namespace, holder, ctx);
    if (resolved.ok) return { kind: 'forward', backends: [{ backend: resolved.backend, weight: 1 }] };
    problems.push({
      code: IngressCode.BackendNotFound,
      condition: 'ResolvedRefs',
      reason: resolved.reason,
      field,
      message: `${field}: ${resolved.message}; its requests get ${UNRESOLVED_BACKEND_STATUS}`,
    });
    return { kind: 'directResponse', status: UNRESOLVED_BACKEND_STATUS };
  };

  const hosts = new Map<string, RankedRoute[]>();
  (ingress.spec?.rules ?? []).forEach((rule, i) => {
    const host = rule.host === undefined || rule.host === '' ? ANY_HOST : rule.host.toLowerCase();
    let list = hosts.get(host);
    if (list === undefined) {
      list = [];
      hosts.set(host, list);
    }
    (rule.http?.paths ?? []).forEach((p, j) => {
      const field = `spec.rules[${i}].http.paths[${j}]`;
      const path = pathMatch(p.pathType, p.path ?? '');
      if (path === undefined) {
        problems.push({
          code: IngressCode.InvalidPath,
          condition: 'PartiallyInvalid',
          reason: 'UnsupportedValue',
          field: `${field}.path`,
          message: `${field}.path: "${p.path ?? ''}" (ImplementationSpecific) is not a regular expression Envoy (RE2) accepts; the path is not served`,
        });
        return;
      }
      const route: IrRoute = {
        name: routeName('Ingress', namespace, name, i, j),
        match: { path },
        action: action(p.backend, `${field}.backend`),
        ...timeouts,
      };
      list.push({
        route,
        pathRank: path.kind === 'Exact' ? 0 : path.kind === 'RegularExpression' ? 1 : 2,
        pathLength: path.value.length,
        rule: i,
        path: j,
      });
    });
  });
  for (const list of hosts.values()) list.sort(compareRanked);

  const spec = ingress.spec;
  const defaultRoute: IrRoute | undefined =
    spec?.defaultBackend === undefined
      ? undefined
      : {
          name: ingressRouteName(namespace, name, 'default-backend'),
          match: { path: { kind: 'PathPrefix', value: '/' } },
          action: action(spec.defaultBackend, 'spec.defaultBackend'),
          ...timeouts,
        };

  const tls = (spec?.tls ?? []).map((t, k): TlsEntry => {
    const entryHosts = [...new Set((t.hosts ?? []).map((h) => h.toLowerCase()))].sort();
    // "host a is not served over TLS, and plain HTTP requests for it get 503", in number with the hosts.
    const which =
      entryHosts.length === 0
        ? { subject: 'the hosts of this Ingress are', object: 'them' }
        : entryHosts.length === 1
          ? { subject: `host ${entryHosts[0]} is`, object: 'it' }
          : { subject: `hosts ${entryHosts.join(', ')} are`, object: 'them' };
    const secretRef = `${namespace}/${t.secretName ?? ''}`;
    const check = tlsSecret(t.secretName, namespace, ctx.secrets);
    if (!check.ok) {
      problems.push({
        code: IngressCode.TlsSecret,
        condition: 'ResolvedRefs',
        reason: 'InvalidCertificateRef',
        field: `spec.tls[${k}].secretName`,
        message: `spec.tls[${k}]: ${check.problem}: ${which.subject} not served over TLS, and plain HTTP requests for ${which.object} get 503`,
      });
    }
    return { index: k, hosts: entryHosts, secretRef, secret: check.ok ? check.secret : undefined };
  });

  return {
    ingress,
    namespace,
    name,
    className,
    createdMs: createdMs(ingress),
    settings,
    hosts,
    defaultRoute,
    tls,
    problems,
  };
}

/** The IR path match of an Ingress path, or undefined when an ImplementationSpecific one does not compile. */
export function pathMatch(pathType: string, path: string): IrPathMatch | undefined {
  switch (pathType) {
    case 'Exact':
      return { kind: 'Exact', value: path };
    case 'Prefix':
      return { kind: 'PathPrefix', value: withoutTrailingSlash(path) };
    default:
      if (path === '') return { kind: 'PathPrefix', value: '/' };
      return validRegex(path) ? { kind: 'RegularExpression', value: path } : undefined;
  }
}

function withoutTrailingSlash(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

/** Exact, then regular expressions, then Prefix; longest first; then position in the Ingress. */
export function compareRanked(a: RankedRoute, b: RankedRoute): number {
  return a.pathRank - b.pathRank || b.pathLength - a.pathLength || a.rule - b.rule || a.path - b.path;
}

type Resolution =
  | { readonly ok: true; readonly backend: string }
  | { readonly ok: false; readonly reason: string; readonly message: string };

/**
 * An Ingress backend: a Service in the Ingress's namespace by port number or port name (resolved to its
 * number through the Service, so both name one IR backend), through the Gateway translator's
 * BackendIndex so that the IR backend is the very one an HTTPRoute to the same port gets.
 */
function resolveBackend(
  backend: IngressBackendSpec,
  namespace: string,
  holder: BackendRefHolder,
  ctx: IngressContext,
): Resolution {
  const service = backend.service;
  if (service === undefined) {
    const r = backend.resource;
    return {
      ok: false,
      reason: 'InvalidKind',
      message: `resource backends (${r?.apiGroup === undefined ? '' : `${r.apiGroup}/`}${r?.kind ?? ''} ${r?.name ?? ''}) are not supported; use a Service`,
    };
  }
  let port = service.port?.number;
  const portName = service.port?.name;
  if ((port === undefined || port === 0) && portName !== undefined && portName !== '') {
    const svc = ctx.services.get(`${namespace}/${service.name}`);
    if (svc === undefined) {
      return {
        ok: false,
        reason: 'BackendNotFound',
        message: `Service ${namespace}/${service.name} not found`,
      };
    }
    port = svc.spec?.ports?.find((p) => p.name === portName && (p.protocol ?? 'TCP') === 'TCP')?.port;
    if (port === undefined) {
      return {
        ok: false,
        reason: 'BackendNotFound',
        message: `Service ${namespace}/${service.name} has no TCP port named "${portName}"`,
      };
    }
  }
  const r = ctx.backends.resolve(
    { name: service.name, ...(port === undefined ? {} : { port }) },
    namespace,
    holder,
  );
  return r.ok ? { ok: true, backend: r.backend } : { ok: false, reason: r.reason, message: r.message };
}

type SecretCheck = { ok: true; secret: IrSecret } | { ok: false; problem: string };

/** Checked once per Secret object (X.509 and key parsing are not free). */
const checked = new WeakMap<Secret, SecretCheck>();

function tlsSecret(
  name: string | undefined,
  namespace: string,
  secrets: ReadonlyMap<string, Secret>,
): SecretCheck {
  if (name === undefined || name === '') return { ok: false, problem: 'no secretName' };
  const secret = secrets.get(`${namespace}/${name}`);
  if (secret === undefined) return { ok: false, problem: `Secret ${namespace}/${name} not found` };
  let check = checked.get(secret);
  if (check === undefined) {
    const c = checkSecret(secret);
    check = c.ok
      ? { ok: true, secret: c.secret }
      : { ok: false, problem: `Secret ${namespace}/${name} ${c.problem}` };
    checked.set(secret, check);
  }
  return check;
}

/** The Secrets a translation of this Ingress reads, for the memo's validity check. */
export function secretsRead(ingress: Ingress, secrets: ReadonlyMap<string, Secret>): (Secret | undefined)[] {
  const namespace = ingress.metadata?.namespace ?? 'default';
  return (ingress.spec?.tls ?? []).map((t) => secrets.get(`${namespace}/${t.secretName ?? ''}`));
}
