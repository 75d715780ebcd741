import type { Ir } from '../model/ir.js';
import type {
  BackendTLSPolicy,
  Diagnostic,
  EndpointSlice,
  Gateway,
  GatewayClass,
  GRPCRoute,
  Namespace,
  ObjectSet,
  ObjectStatus,
  ReferenceGrant,
  Secret,
  Service,
  TCPRoute,
  TLSRoute,
  UDPRoute,
} from '../sources/objects.js';
import { AssemblyMemo, assembleIr, shareStructure } from './assembleIr.js';
import { BackendCache, BackendIndex } from './backends.js';
import { BackendTlsIndex } from './backendTlsPolicies.js';
import { carryStatus, carryTransitionTimes, statusKey } from './conditions.js';
import { dropInvalid, ValidationMemo } from './dropInvalid.js';
import { type CrdBundleVersion, processGatewayClasses } from './gatewayClasses.js';
import { gatewayStatusEntries } from './gatewayStatus.js';
import { GRPC_ROUTE_KIND } from './grpcRoutes.js';
import {
  finishRoutes,
  processHttpRoutes,
  processRoutes,
  type RouteFinal,
  type RouteKind,
  type RouteLosses,
  type RouteMemo,
  type RouteMemoEntry,
  type RouteObject,
  type RouteState,
  type RouteTranslation,
  stampRouteStatus,
} from './httpRoutes.js';
import { Interner } from './intern.js';
import {
  type L4Memo,
  type L4RouteState,
  type L4Translation,
  l4Attachments,
  TCP_ROUTE_KIND,
  TLS_ROUTE_KIND,
  UDP_ROUTE_KIND,
} from './l4Routes.js';
import { type GatewayState, type GatewaysResult, processGateways, type ReservedSocket } from './listeners.js';
import { ConflictMemo, kindConflicts } from './routeConflicts.js';
import type { TranslatedRoute } from './routeRules.js';

/** The controllerName Skein answers to unless told otherwise. */
export const DEFAULT_CONTROLLER_NAME = 'skein.io/gateway-controller';

export interface GatewayTranslateOptions {
  /** GatewayClasses with this controllerName are Skein's (default skein.io/gateway-controller). */
  readonly controllerName?: string;
  /** lastTransitionTime of every condition; the caller's clock, so the translation stays pure. */
  readonly transitionTime: string;
  /**
   * The statuses of the last build, if any: a condition that did not change keeps its lastTransitionTime
   * from there (see carryTransitionTimes), so that a rebuild with no change yields the same statuses.
   */
  readonly previous?: readonly ObjectStatus[];
  /**
   * Sockets the gateway Envoy cannot bind because something else holds them (Envoy's admin port, Skein's
   * status port): a listener that would bind one is not accepted (PortUnavailable). Default none.
   */
  readonly reservedSockets?: readonly ReservedSocket[];
  /**
   * The Gateway API CRDs in the cluster and their bundle versions, for the GatewayClass SupportedVersion
   * condition. Absent (standalone: no CRDs) nothing is compared.
   */
  readonly crdBundleVersions?: readonly CrdBundleVersion[];
}

export interface GatewayResult {
  readonly ir: Ir;
  /**
   * Status of our GatewayClasses, then Gateways, then BackendTLSPolicies, then HTTPRoutes, GRPCRoutes,
   * TLSRoutes, TCPRoutes and UDPRoutes (each kind in input order). Every condition has
   * lastTransitionTime `transitionTime`, unless it is carried over from `previous`.
   */
  readonly statuses: ObjectStatus[];
  /** Problems that are not status conditions (a Gateway naming a missing class; translator bugs). */
  readonly diagnostics: Diagnostic[];
}

export interface GatewayTranslator {
  translate(objects: ObjectSet, options: GatewayTranslateOptions): GatewayResult;
}

/**
 * A Gateway API translator that remembers its last build, so that unchanged objects yield the same IR
 * objects (by identity) as before: HTTPRoute rules are memoised per route object, backends per Service
 * and EndpointSlices, and virtual hosts and listeners are shared when their contents are. The result is
 * still a pure function of the input: the memo only changes which equal objects come back.
 */
export function createGatewayTranslator(): GatewayTranslator {
  const routeMemo: RouteMemo = new WeakMap();
  const memos = {
    grpc: new WeakMap() as RouteMemo<GRPCRoute, TranslatedRoute>,
    tls: new WeakMap() as RouteMemo<TLSRoute, L4Translation>,
    tcp: new WeakMap() as RouteMemo<TCPRoute, L4Translation>,
    udp: new WeakMap() as RouteMemo<UDPRoute, L4Translation>,
  };
  const backendCache = new BackendCache();
  const assembly = new AssemblyMemo();
  const conflicts = new ConflictMemo();
  const l4Memo: L4Memo = new WeakMap();
  const validation = new ValidationMemo();
  /** The status returned for each Gateway state, with the attachedRoutes counts it was made for. */
  const gatewayMemo = new WeakMap<GatewayState, { counts: string; build: number; status: ObjectStatus }>();
  let previous: Ir | undefined;
  let build = 0;
  /** The statuses the last call returned (when it succeeded), for carrying transition times cheaply. */
  let returned:
    | {
        readonly statuses: readonly ObjectStatus[];
        readonly build: number;
        /** Its GatewayClass and Gateway statuses by statusKey; route statuses are in the route memo. */
        readonly others: ReadonlyMap<string, ObjectStatus>;
        readonly duplicates: boolean;
      }
    | undefined;
  /** The memo entry of each route id the last call returned a status for (stale ones tell by `build`). */
  let routesById = new Map<string, RouteFinal>();
  const interned = {
    gatewayClasses: new Interner<GatewayClass>(),
    gateways: new Interner<Gateway>(),
    services: new Interner<Service>(),
    endpointSlices: new Interner<EndpointSlice>(),
    secrets: new Interner<Secret>(),
    namespaces: new Interner<Namespace>(),
    referenceGrants: new Interner<ReferenceGrant>(),
    backendTLSPolicies: new Interner<BackendTLSPolicy>(),
  };
  let lastGateways:
    | {
        readonly classes: readonly GatewayClass[];
        readonly gateways: readonly Gateway[];
        /** What listeners read besides: certificateRefs' Secrets and grants, namespaces' labels. */
        readonly secrets: readonly Secret[];
        readonly namespaces: readonly Namespace[];
        readonly referenceGrants: readonly ReferenceGrant[];
        /** reservedSockets, as JSON. */
        readonly reserved: string;
        readonly controllerName: string;
        readonly result: GatewaysResult;
      }
    | undefined;

  return {
    translate(input, options) {
      const last = returned;
      // A call that throws leaves the memo usable, but not `returned`: the caller keeps its old statuses.
      returned = undefined;
      // Equal objects become the previous build's (see Interner), so that the memos below hit.
      const objects: ObjectSet = {
        ...input,
        gatewayClasses: interned.gatewayClasses.intern(input.gatewayClasses),
        gateways: interned.gateways.intern(input.gateways),
        services: interned.services.intern(input.services),
        endpointSlices: interned.endpointSlices.intern(input.endpointSlices),
        secrets: interned.secrets.intern(input.secrets),
        namespaces: interned.namespaces.intern(input.namespaces),
        referenceGrants: interned.referenceGrants.intern(input.referenceGrants),
        backendTLSPolicies: interned.backendTLSPolicies.intern(input.backendTLSPolicies),
      };
      const controllerName = options.controllerName ?? DEFAULT_CONTROLLER_NAME;
      const reservedKey = JSON.stringify(options.reservedSockets ?? []);
      const { transitionTime } = options;
      build++;

      // 1. GatewayClasses: which classes are ours, and whether each is accepted.
      const classes = processGatewayClasses(
        objects.gatewayClasses,
        controllerName,
        transitionTime,
        options.crdBundleVersions,
      );
      const classNames = new Set(objects.gatewayClasses.map((c) => c.metadata?.name ?? ''));

      // 2+3. Gateways of our classes: listeners checked one by one (protocol, TLS certificateRefs with
      // their Secrets and ReferenceGrants, route kinds, namespace selectors), addresses bound, then
      // protocol and hostname conflicts found across every Gateway that shares a socket (they merge into
      // one IR listener). The result depends on the classes, the Gateways, the Secrets, Namespaces and
      // ReferenceGrants and the controllerName alone; while they are the same objects it is reused, with
      // its attachedRoutes counts reset, so that the route memo (which holds its listeners) stays valid.
      let gateways: GatewaysResult;
      if (
        lastGateways !== undefined &&
        lastGateways.controllerName === controllerName &&
        sameItems(lastGateways.classes, objects.gatewayClasses) &&
        sameItems(lastGateways.gateways, objects.gateways) &&
        sameItems(lastGateways.secrets, objects.secrets) &&
        sameItems(lastGateways.namespaces, objects.namespaces) &&
        sameItems(lastGateways.referenceGrants, objects.referenceGrants) &&
        lastGateways.reserved === reservedKey
      ) {
        gateways = lastGateways.result;
        for (const g of gateways.gateways.values()) for (const l of g.listeners) l.attachedRoutes = 0;
      } else {
        gateways = processGateways(objects.gateways, classes.classes, classNames, {
          secrets: objects.secrets,
          namespaces: objects.namespaces,
          referenceGrants: objects.referenceGrants,
          reservedSockets: options.reservedSockets ?? [],
        });
        lastGateways = {
          reserved: reservedKey,
          classes: [...objects.gatewayClasses],
          gateways: [...objects.gateways],
          secrets: [...objects.secrets],
          namespaces: [...objects.namespaces],
          referenceGrants: [...objects.referenceGrants],
          controllerName,
          result: gateways,
        };
      }

      // 4. Backends: Services and EndpointSlices indexed; IR backends built on demand, memoised.
      // ReferenceGrants decide which cross-namespace backendRefs resolve; BackendTLSPolicies (with their
      // CA ConfigMaps) give backends TLS.
      const backendTls = new BackendTlsIndex(objects.backendTLSPolicies, objects.configMaps);
      const backends = new BackendIndex(objects.services, objects.endpointSlices, backendCache, {
        referenceGrants: objects.referenceGrants,
        tls: backendTls,
      });

      // 5. Routes of every kind, each on its own: attached to listeners, rules translated once per route
      // object. HTTPRoutes and GRPCRoutes become IR routes on virtual hosts; TLSRoutes, TCPRoutes and
      // UDPRoutes IR L4 routes on their listeners.
      const routeOptions = { controllerName };
      const httpRoutes = processHttpRoutes(objects.httpRoutes, gateways, backends, routeMemo, routeOptions);
      const routesOf = <R extends RouteObject, T extends RouteTranslation>(
        kind: RouteKind<R, T>,
        list: readonly R[],
        memo: RouteMemo<R, T>,
      ) => processRoutes(kind, list, gateways, backends, memo, routeOptions);
      const grpcRoutes = routesOf(GRPC_ROUTE_KIND, objects.grpcRoutes, memos.grpc);
      const tlsRoutes = routesOf(TLS_ROUTE_KIND, objects.tlsRoutes, memos.tls);
      const tcpRoutes = routesOf(TCP_ROUTE_KIND, objects.tcpRoutes, memos.tcp);
      const udpRoutes = routesOf(UDP_ROUTE_KIND, objects.udpRoutes, memos.udp);
      const kinds = [httpRoutes, grpcRoutes, tlsRoutes, tcpRoutes, udpRoutes];

      // 5b. What routes take from each other: an HTTPRoute and a GRPCRoute that share a hostname on a
      // listener (the older one keeps it, the other is not accepted there); a TCP or UDP port, or a TLS
      // server name, that an older route holds (the others stay accepted but carry nothing there).
      const l4States = [
        ...tlsRoutes.routes,
        ...tcpRoutes.routes,
        ...udpRoutes.routes,
      ] as readonly L4RouteState[];
      const l4 = l4Attachments(l4States, l4Memo);
      const losses = new Map<RouteState, RouteLosses>();
      for (const [state, rejected] of kindConflicts(httpRoutes.routes, grpcRoutes.routes, conflicts))
        losses.set(state, { rejected });
      for (const [state, unserved] of l4.unserved) losses.set(state as unknown as RouteState, { unserved });

      // 5c. Each route's status, and the attachedRoutes counts of its parents with Accepted=True (so this
      // precedes Gateway status).
      const finishOptions = { controllerName, transitionTime };
      const httpFinal = finishRoutes(httpRoutes.entries, losses, finishOptions);
      const grpcFinal = finishRoutes(grpcRoutes.entries, losses, finishOptions);
      const l4Final = [tlsRoutes, tcpRoutes, udpRoutes].flatMap((k) =>
        finishRoutes(k.entries as readonly RouteMemoEntry[], losses, finishOptions),
      );
      const routes = {
        routes: [...httpFinal.map((f) => f.state), ...grpcFinal.map((f) => f.state)] as readonly RouteState[],
        l4: l4States,
        statuses: [...httpFinal, ...grpcFinal, ...l4Final].filter(
          (f) => f.status !== undefined,
        ) as RouteFinal[],
        duplicates: kinds.some((k) => k.duplicates),
      };

      // 6. Gateway status, now that attachedRoutes is known. A Gateway whose state and counts are those
      // of the last build gets the status returned then (transition times carried), as routes do.
      const carrying = last !== undefined && options.previous === last.statuses;
      const gatewayEntries = gatewayStatusEntries(gateways.gateways.values(), transitionTime, (g) => {
        const m = gatewayMemo.get(g);
        return carrying && m !== undefined && m.build === last?.build && m.counts === attachedCounts(g)
          ? m.status
          : undefined;
      });
      const gatewayStatus = gatewayEntries.map((e) => e.status);

      // 6b. BackendTLSPolicy status, per Gateway through which routes reach a Service it targets.
      const policyStatus =
        backendTls.policies.length === 0
          ? []
          : backendTls.statuses(
              serviceGateways([...routes.routes, ...routes.l4]),
              controllerName,
              transitionTime,
            );

      // 7. The IR: sockets, virtual hosts per hostname, routes in precedence order, used backends.
      const assembled = assembleIr(
        gateways.gateways.values(),
        routes.routes,
        backends,
        { order: assembly, unique: !routes.duplicates },
        l4.attachments,
      );
      backendCache.commit();

      // 8. validate(): whatever it finds is a translator bug; drop the part, keep the rest serving.
      const checked = dropInvalid(assembled, validation);

      // 9. Reuse the previous IR's objects where nothing changed, for the Envoy translator's memo.
      const ir = shareStructure(previous, checked.ir);
      previous = ir;

      // 10. Statuses, with the transition times of unchanged conditions carried over from `previous`.
      // When `previous` is what the last call returned, a route whose memo entry was reused returns the
      // very status it returned then (carrying again would give the same), and only the others are
      // carried, so this costs what changed. Otherwise every status is carried the plain way.
      const others = [...classes.statuses, ...gatewayStatus, ...policyStatus];
      let statuses: ObjectStatus[];
      if (
        last !== undefined &&
        options.previous === last.statuses &&
        !last.duplicates &&
        !routes.duplicates
      ) {
        statuses = others.map((s) => carryStatus(last.others.get(statusKey(s)), s));
        for (const entry of routes.statuses) {
          const before = routesById.get(entry.id)?.returned;
          let status: ObjectStatus;
          if (entry.returned !== undefined && entry.returned.build === last.build) {
            status = entry.returned.status;
          } else {
            const stamped = stampRouteStatus(entry.status as ObjectStatus, transitionTime);
            status = carryStatus(before?.build === last.build ? before.status : undefined, stamped);
          }
          // The same record, updated in place: a build where nothing changed allocates nothing per route.
          if (entry.returned !== undefined && entry.returned.status === status) entry.returned.build = build;
          else entry.returned = { status, build };
          statuses.push(status);
        }
      } else {
        const made = [
          ...others,
          ...routes.statuses.map((e) => stampRouteStatus(e.status as ObjectStatus, transitionTime)),
        ];
        statuses = options.previous === undefined ? made : carryTransitionTimes(options.previous, made);
        routes.statuses.forEach((entry, i) => {
          entry.returned = { status: statuses[others.length + i] as ObjectStatus, build };
        });
      }
      gatewayEntries.forEach((e, i) => {
        const status = statuses[classes.statuses.length + i];
        if (status !== undefined)
          gatewayMemo.set(e.gateway, { counts: attachedCounts(e.gateway), build, status });
      });
      // Ids of routes gone since stay until the map has grown to twice the live ones.
      if (routesById.size > 2 * routes.statuses.length + 16) routesById = new Map();
      for (const entry of routes.statuses) routesById.set(entry.id, entry);
      returned = {
        statuses,
        build,
        others: new Map(statuses.slice(0, others.length).map((s) => [statusKey(s), s])),
        duplicates: routes.duplicates,
      };
      return {
        ir,
        statuses,
        diagnostics: [...gateways.diagnostics, ...checked.diagnostics],
      };
    },
  };
}

/**
 * For each Service (`namespace/name`) some route forwards to, the Gateways (`namespace/name`) of the
 * listeners that route attaches to: the ancestors a BackendTLSPolicy for the Service reports on.
 */
function serviceGateways(states: readonly (RouteState | L4RouteState)[]): (service: string) => string[] {
  const byService = new Map<string, Set<string>>();
  for (const state of states) {
    if (state.attachments.length === 0) continue;
    const services = new Set<string>();
    for (const rule of state.translated.rules) {
      const backends =
        'backends' in rule
          ? rule.backends
          : rule.routes.flatMap((r) => (r.route.action.kind === 'forward' ? r.route.action.backends : []));
      for (const b of backends) services.add(b.backend.split('/').slice(0, 2).join('/'));
    }
    for (const service of services) {
      const gateways = byService.get(service) ?? new Set<string>();
      byService.set(service, gateways);
      for (const a of state.attachments)
        gateways.add(`${a.listener.gateway.namespace}/${a.listener.gateway.name}`);
    }
  }
  return (service) => [...(byService.get(service) ?? [])];
}

/** The attachedRoutes of a Gateway's listeners, as a key. */
function attachedCounts(g: GatewayState): string {
  return g.listeners.map((l) => l.attachedRoutes).join(',');
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One translation, with no memory of earlier ones (for `skein translate` and tests). */
export function translateGateway(objects: ObjectSet, options: GatewayTranslateOptions): GatewayResult {
  return createGatewayTranslator().translate(objects, options);
}
