import { isIP } from 'node:net';
import { shareStructure } from '../gateway/assembleIr.js';
import { BackendCache, BackendIndex } from '../gateway/backends.js';
import { carryTransitionTimes } from '../gateway/conditions.js';
import { dropInvalid } from '../gateway/dropInvalid.js';
import { Interner } from '../gateway/intern.js';
import type { ReservedSocket } from '../gateway/listeners.js';
import { emptyIr, type Ir } from '../model/ir.js';
import type { IrConflict } from '../model/merge.js';
import { validPort } from '../model/validate.js';
import type {
  Diagnostic,
  EndpointSlice,
  Ingress,
  ObjectSet,
  ObjectStatus,
  Secret,
  Service,
} from '../sources/objects.js';
import type { IngressDefaults, LoadBalancerMode } from './annotations.js';
import { assembleIngressIr } from './assemble.js';
import { classOf, selectClasses } from './classes.js';
import { IngressCode, type IngressProblem } from './codes.js';
import { type IngressContext, secretsRead, type TranslatedIngress, translateOne } from './ingressRules.js';
import { type MergeLosses, mergeLosses } from './mergeConflicts.js';
import { bindSockets } from './sockets.js';
import { ingressStatus, problemDiagnostics } from './status.js';

/** The IngressClass `spec.controller` Skein answers to unless told otherwise. */
export const DEFAULT_INGRESS_CONTROLLER = 'skein.io/ingress-controller';

/** The Ingress settings that come from configuration (`skein up`, the chart). */
export interface IngressConfig {
  /** IngressClasses with this `spec.controller` are Skein's (default skein.io/ingress-controller). */
  readonly controllerName?: string;
  /** Where Ingresses listen unless `ingress.skein.io/address` says otherwise (default 0.0.0.0). */
  readonly defaultAddress?: string;
  /** Default 80 and 443; `ingress.skein.io/http-port` and `https-port` override them per Ingress. */
  readonly httpPort?: number;
  readonly httpsPort?: number;
  /** `shared` (default) or `dedicated`; `ingress.skein.io/loadbalancer-mode` overrides it per Ingress. */
  readonly defaultLoadBalancerMode?: LoadBalancerMode;
  /**
   * The address reported in `status.loadBalancer.ingress` (in Kubernetes, the address of the Service
   * the chart creates); default: the address the Ingress listens on.
   */
  readonly statusAddress?: string;
  /** Sockets no Ingress may take (Envoy's admin port, Skein's status port); the same as the Gateway's. */
  readonly reservedSockets?: readonly ReservedSocket[];
}

export interface IngressTranslateOptions extends IngressConfig {
  /** lastTransitionTime of every condition; the caller's clock, so the translation stays pure. */
  readonly transitionTime: string;
  /** The statuses of the last build: unchanged conditions keep their lastTransitionTime from there. */
  readonly previous?: readonly ObjectStatus[];
}

export interface IngressResult {
  readonly ir: Ir;
  /** One status per Ingress of our classes, in input order (namespace, then name). */
  readonly statuses: ObjectStatus[];
  /** Every problem in a status, once more as a diagnostic (the log line); translator bugs. */
  readonly diagnostics: Diagnostic[];
  /**
   * The statuses and diagnostics again, with what merging this IR after the Gateway API's took from
   * the Ingresses (src/model/merge.ts: the Gateway API wins): each conflict becomes a problem on the
   * Ingresses it concerns, naming them and the field. `unmatched`: the conflicts that concern no
   * Ingress (backends or secrets of one name), to be reported as they are.
   */
  withMergeConflicts(conflicts: readonly IrConflict[]): {
    readonly statuses: ObjectStatus[];
    readonly diagnostics: Diagnostic[];
    readonly unmatched: readonly IrConflict[];
  };
}

export interface IngressTranslator {
  translate(objects: ObjectSet, options: IngressTranslateOptions): IngressResult;
}

const EMPTY: IngressResult = Object.freeze({
  ir: emptyIr,
  statuses: [],
  diagnostics: [],
  withMergeConflicts: (conflicts: readonly IrConflict[]) => ({
    statuses: [],
    diagnostics: [],
    unmatched: conflicts,
  }),
}) as IngressResult;

/**
 * An Ingress translator that remembers its last build: each Ingress is translated again only when it,
 * the Services (how its backends resolve) or the Secrets it names changed; backends are reused while
 * their Service and EndpointSlices are the same; and IR objects equal to the last build's are the last
 * build's (shareStructure), so the Envoy translator re-translates only what changed. The result is
 * still a pure function of the input.
 */
export function createIngressTranslator(): IngressTranslator {
  const memo = new WeakMap<
    Ingress,
    {
      resolutions: object;
      secrets: readonly (Secret | undefined)[];
      key: string;
      translated: TranslatedIngress;
    }
  >();
  const backendCache = new BackendCache();
  const interned = {
    services: new Interner<Service>(),
    endpointSlices: new Interner<EndpointSlice>(),
    secrets: new Interner<Secret>(),
  };
  let previous: Ir | undefined;

  return {
    translate(objects, options) {
      const config = checkOptions(options);
      const { controllerName, defaults } = config;

      // 1. IngressClasses: which are ours, and which one is the default.
      const selection = selectClasses(objects.ingressClasses, controllerName);

      // 2. Our Ingresses: by spec.ingressClassName, the legacy annotation, or the default class. The
      // others belong to other controllers and get nothing from us, not even a status.
      const ours: { ingress: Ingress; className: string }[] = [];
      for (const ingress of objects.ingresses) {
        const className = classOf(ingress, selection);
        if (className !== undefined) ours.push({ ingress, className });
      }
      if (ours.length === 0) {
        previous = undefined;
        return EMPTY;
      }

      // 3. Backends: Services and EndpointSlices indexed with the Gateway translator's BackendIndex, so a
      // Service port is the same IR backend (same name, same content) whichever translator names it.
      const services = interned.services.intern(objects.services);
      const backends = new BackendIndex(
        services,
        interned.endpointSlices.intern(objects.endpointSlices),
        backendCache,
      );
      const secrets = interned.secrets.intern(objects.secrets);
      const ctx: IngressContext = {
        backends,
        services: new Map(
          services.map((s) => [`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s]),
        ),
        secrets: new Map(
          secrets.map((s) => [`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s]),
        ),
        defaults,
      };

      // 4. Each Ingress alone: annotations, paths per host in precedence order, default backend, TLS
      // entries with their Secrets checked. Memoised per Ingress object.
      const key = JSON.stringify(defaults);
      const translated = ours.map(({ ingress, className }) => {
        const read = secretsRead(ingress, ctx.secrets);
        const hit = memo.get(ingress);
        if (
          hit !== undefined &&
          hit.resolutions === backends.resolutions &&
          hit.key === `${key}|${className}` &&
          sameItems(hit.secrets, read)
        ) {
          return hit.translated;
        }
        const t = translateOne(ingress, className, ctx);
        memo.set(ingress, {
          resolutions: backends.resolutions,
          secrets: read,
          key: `${key}|${className}`,
          translated: t,
        });
        return t;
      });

      // 5. Sockets: each Ingress's HTTP (and, with spec.tls, HTTPS) address and port, oldest Ingress
      // first, so that shared/dedicated and protocol conflicts are decided the same way every time.
      const byAge = [...translated].sort(compareIngresses);
      const binding = bindSockets(byAge, options.reservedSockets);

      // 6. The IR: certificates by SNI, virtual hosts per host with their routes in precedence order,
      // force-https redirects, 503 for hosts whose TLS cannot be served.
      const assembled = assembleIngressIr(binding, backends);
      backendCache.commit();

      // 7. validate(): whatever it finds is a translator bug; drop the part, keep the rest serving.
      const checked = dropInvalid(assembled.ir);

      // 8. Reuse the previous IR's objects where nothing changed, for the Envoy translator's memo.
      const ir = shareStructure(previous, checked.ir);
      previous = ir;

      // 9. Statuses and diagnostics, per Ingress in input order; again, with what the merge with the
      // Gateway API's IR took from the Ingresses, once that is known (withMergeConflicts).
      const report = (losses: MergeLosses | undefined): Pick<IngressResult, 'statuses' | 'diagnostics'> => {
        const statuses: ObjectStatus[] = [];
        const diagnostics: Diagnostic[] = [];
        for (const t of translated) {
          const problems: IngressProblem[] = [
            ...t.problems,
            ...(binding.problems.get(t) ?? []),
            ...(assembled.problems.get(t) ?? []),
            ...(losses?.problems.get(t) ?? []),
          ];
          const lost = losses?.lost.get(t);
          statuses.push(
            ingressStatus(
              t,
              problems,
              {
                http: binding.http.get(t),
                https: binding.https.get(t),
                programmed: assembled.programmed,
                ...(lost === undefined ? {} : { lost }),
              },
              { controllerName, statusAddress: config.statusAddress, transitionTime: options.transitionTime },
            ),
          );
          diagnostics.push(...problemDiagnostics(t, problems, objects.origins));
        }
        for (const d of checked.diagnostics) diagnostics.push({ ...d, code: IngressCode.Internal });
        return {
          statuses:
            options.previous === undefined ? statuses : carryTransitionTimes(options.previous, statuses),
          diagnostics,
        };
      };
      const own = report(undefined);
      return {
        ir,
        ...own,
        withMergeConflicts(conflicts) {
          if (conflicts.length === 0) return { ...own, unmatched: [] };
          const losses = mergeLosses(conflicts, binding);
          if (losses.problems.size === 0) return { ...own, unmatched: losses.unmatched };
          return { ...report(losses), unmatched: losses.unmatched };
        },
      };
    },
  };
}

/** One translation, with no memory of earlier ones (for `skein translate` and tests). */
export function translateIngress(objects: ObjectSet, options: IngressTranslateOptions): IngressResult {
  return createIngressTranslator().translate(objects, options);
}

/** Oldest first (creationTimestamp; objects from files have none and come after), then namespace/name. */
function compareIngresses(a: TranslatedIngress, b: TranslatedIngress): number {
  if (a.createdMs !== b.createdMs) return a.createdMs < b.createdMs ? -1 : 1;
  const ka = `${a.namespace}/${a.name}`;
  const kb = `${b.namespace}/${b.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

interface CheckedConfig {
  readonly controllerName: string;
  readonly defaults: IngressDefaults;
  readonly statusAddress: string | undefined;
}

/** Options are configuration: a bad one is the operator's mistake, reported before anything is built. */
function checkOptions(o: IngressTranslateOptions): CheckedConfig {
  const defaults: IngressDefaults = {
    defaultAddress: o.defaultAddress ?? '0.0.0.0',
    httpPort: o.httpPort ?? 80,
    httpsPort: o.httpsPort ?? 443,
    defaultLoadBalancerMode: o.defaultLoadBalancerMode ?? 'shared',
  };
  const fail = (what: string, value: unknown, expected: string): never => {
    throw new Error(`Cannot translate Ingresses with ${what} ${JSON.stringify(value)}: expected ${expected}`);
  };
  if (isIP(defaults.defaultAddress) === 0) fail('defaultAddress', defaults.defaultAddress, 'an IP address');
  if (!validPort(defaults.httpPort)) fail('httpPort', defaults.httpPort, 'a port in 1..65535');
  if (!validPort(defaults.httpsPort)) fail('httpsPort', defaults.httpsPort, 'a port in 1..65535');
  if (defaults.httpPort === defaults.httpsPort)
    fail('httpsPort', defaults.httpsPort, 'a port other than httpPort');
  if (defaults.defaultLoadBalancerMode !== 'shared' && defaults.defaultLoadBalancerMode !== 'dedicated') {
    fail('defaultLoadBalancerMode', defaults.defaultLoadBalancerMode, '"shared" or "dedicated"');
  }
  if (o.statusAddress !== undefined && o.statusAddress.trim() === '')
    fail('statusAddress', o.statusAddress, 'an address');
  return {
    controllerName: o.controllerName ?? DEFAULT_INGRESS_CONTROLLER,
    defaults,
    statusAddress: o.statusAddress,
  };
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
