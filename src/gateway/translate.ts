import type { Ir } from '../model/ir.js';
import type { Diagnostic, ObjectSet, ObjectStatus } from '../sources/objects.js';
import { assembleIr, shareStructure } from './assembleIr.js';
import { BackendCache, BackendIndex } from './backends.js';
import { dropInvalid } from './dropInvalid.js';
import { processGatewayClasses } from './gatewayClasses.js';
import { gatewayStatuses } from './gatewayStatus.js';
import { processHttpRoutes, type RouteMemo } from './httpRoutes.js';
import { processGateways } from './listeners.js';

/** The controllerName Skein answers to unless told otherwise. */
export const DEFAULT_CONTROLLER_NAME = 'skein.io/gateway-controller';

export interface GatewayTranslateOptions {
  /** GatewayClasses with this controllerName are Skein's (default skein.io/gateway-controller). */
  readonly controllerName?: string;
  /** lastTransitionTime of every condition; the caller's clock, so the translation stays pure. */
  readonly transitionTime: string;
}

export interface GatewayResult {
  readonly ir: Ir;
  /** Status of our GatewayClasses, then Gateways, then HTTPRoutes, each sorted by namespace/name. */
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
  let previous: Ir | undefined;

  return {
    translate(objects, options) {
      const controllerName = options.controllerName ?? DEFAULT_CONTROLLER_NAME;
      const { transitionTime } = options;

      // 1. GatewayClasses: which classes are ours, and whether each is accepted.
      const classes = processGatewayClasses(objects.gatewayClasses, controllerName, transitionTime);
      const classNames = new Set(objects.gatewayClasses.map((c) => c.metadata?.name ?? ''));

      // 2+3. Gateways of our classes: listeners checked one by one, addresses bound, then hostname
      // conflicts found across every Gateway that shares a socket (they merge into one IR listener).
      const gateways = processGateways(objects.gateways, classes.classes, classNames);

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
      const assembled = assembleIr(gateways.gateways.values(), routes.routes, backends);
      backendCache.commit();

      // 8. validate(): whatever it finds is a translator bug; drop the part, keep the rest serving.
      const checked = dropInvalid(assembled);

      // 9. Reuse the previous IR's objects where nothing changed, for the Envoy translator's memo.
      const ir = shareStructure(previous, checked.ir);
      previous = ir;
      return {
        ir,
        statuses: [...classes.statuses, ...gatewayStatus, ...routes.statuses],
        diagnostics: [...gateways.diagnostics, ...checked.diagnostics],
      };
    },
  };
}

/** One translation, with no memory of earlier ones (for `skein translate` and tests). */
export function translateGateway(objects: ObjectSet, options: GatewayTranslateOptions): GatewayResult {
  return createGatewayTranslator().translate(objects, options);
}
