import type { Ir } from '../model/ir.js';
import type {
  Diagnostic,
  EndpointSlice,
  Gateway,
  GatewayClass,
  ObjectSet,
  ObjectStatus,
  Service,
} from '../sources/objects.js';
import { assembleIr, RouteOrderMemo, shareStructure } from './assembleIr.js';
import { BackendCache, BackendIndex } from './backends.js';
import { carryStatus, carryTransitionTimes, statusKey } from './conditions.js';
import { dropInvalid } from './dropInvalid.js';
import { processGatewayClasses } from './gatewayClasses.js';
import { gatewayStatuses } from './gatewayStatus.js';
import { processHttpRoutes, type RouteMemo, type RouteMemoEntry, stampRouteStatus } from './httpRoutes.js';
import { Interner } from './intern.js';
import { type GatewaysResult, processGateways } from './listeners.js';

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
}

export interface GatewayResult {
  readonly ir: Ir;
  /**
   * Status of our GatewayClasses, then Gateways, then HTTPRoutes (in input order). Every condition has
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
  const backendCache = new BackendCache();
  const routeOrder = new RouteOrderMemo();
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
  let routesById = new Map<string, RouteMemoEntry>();
  const interned = {
    gatewayClasses: new Interner<GatewayClass>(),
    gateways: new Interner<Gateway>(),
    services: new Interner<Service>(),
    endpointSlices: new Interner<EndpointSlice>(),
  };
  let lastGateways:
    | {
        readonly classes: readonly GatewayClass[];
        readonly gateways: readonly Gateway[];
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
      };
      const controllerName = options.controllerName ?? DEFAULT_CONTROLLER_NAME;
      const { transitionTime } = options;
      build++;

      // 1. GatewayClasses: which classes are ours, and whether each is accepted.
      const classes = processGatewayClasses(objects.gatewayClasses, controllerName, transitionTime);
      const classNames = new Set(objects.gatewayClasses.map((c) => c.metadata?.name ?? ''));

      // 2+3. Gateways of our classes: listeners checked one by one, addresses bound, then hostname
      // conflicts found across every Gateway that shares a socket (they merge into one IR listener).
      // The result depends on the classes, the Gateways and the controllerName alone; while they are the
      // same objects it is reused, with its attachedRoutes counts reset, so that the route memo (which
      // holds its listeners) stays valid.
      let gateways: GatewaysResult;
      if (
        lastGateways !== undefined &&
        lastGateways.controllerName === controllerName &&
        sameItems(lastGateways.classes, objects.gatewayClasses) &&
        sameItems(lastGateways.gateways, objects.gateways)
      ) {
        gateways = lastGateways.result;
        for (const g of gateways.gateways.values()) for (const l of g.listeners) l.attachedRoutes = 0;
      } else {
        gateways = processGateways(objects.gateways, classes.classes, classNames);
        lastGateways = {
          classes: [...objects.gatewayClasses],
          gateways: [...objects.gateways],
          controllerName,
          result: gateways,
        };
      }

      // 4. Backends: Services and EndpointSlices indexed; IR backends built on demand, memoised.
      const backends = new BackendIndex(objects.services, objects.endpointSlices, backendCache);

      // 5. HTTPRoutes: attached to listeners (which counts attachedRoutes, so it precedes Gateway status),
      // rules translated once per route object.
      const routes = processHttpRoutes(objects.httpRoutes, gateways, backends, routeMemo, {
        controllerName,
        transitionTime,
      });

      // 6. Gateway status, now that attachedRoutes is known.
      const gatewayStatus = gatewayStatuses(gateways.gateways.values(), transitionTime);

      // 7. The IR: sockets, virtual hosts per hostname, routes in precedence order, used backends.
      const assembled = assembleIr(gateways.gateways.values(), routes.routes, backends, {
        order: routeOrder,
        unique: !routes.duplicates,
      });
      backendCache.commit();
      routeOrder.commit();

      // 8. validate(): whatever it finds is a translator bug; drop the part, keep the rest serving.
      const checked = dropInvalid(assembled);

      // 9. Reuse the previous IR's objects where nothing changed, for the Envoy translator's memo.
      const ir = shareStructure(previous, checked.ir);
      previous = ir;

      // 10. Statuses, with the transition times of unchanged conditions carried over from `previous`.
      // When `previous` is what the last call returned, a route whose memo entry was reused returns the
      // very status it returned then (carrying again would give the same), and only the others are
      // carried, so this costs what changed. Otherwise every status is carried the plain way.
      const others = [...classes.statuses, ...gatewayStatus];
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
          entry.returned = { status, build };
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

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One translation, with no memory of earlier ones (for `skein translate` and tests). */
export function translateGateway(objects: ObjectSet, options: GatewayTranslateOptions): GatewayResult {
  return createGatewayTranslator().translate(objects, options);
}
