import { isIP } from 'node:net';
import { listenerName } from '../model/names.js';
import type { Diagnostic, Gateway } from '../sources/objects.js';
import { type AddressResult, gatewayAddresses } from './addresses.js';
import { generationOf } from './conditions.js';
import type { ClassState } from './gatewayClasses.js';
import { GatewayCode } from './gatewayCodes.js';
import { type CompiledSelector, compileSelector } from './labelSelector.js';
import { compareAge } from './precedence.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface RouteGroupKind {
  readonly group: string;
  readonly kind: string;
}

/** The route kinds an HTTP listener takes. */
const HTTP_KINDS: readonly RouteGroupKind[] = [{ group: GATEWAY_GROUP, kind: 'HTTPRoute' }];

/** Which namespaces may attach routes to a listener. */
export type NamespacePolicy =
  | { readonly from: 'All' }
  | { readonly from: 'Same' }
  | { readonly from: 'Selector'; readonly selector: CompiledSelector };

/** Why a listener (or Gateway) is in the state it is, for its conditions. */
export interface Verdict {
  readonly ok: boolean;
  readonly reason: string;
  readonly message: string;
}

export interface ListenerState {
  readonly gateway: GatewayState;
  readonly name: string;
  readonly port: number;
  readonly protocol: string;
  readonly hostname: string | undefined;
  readonly supportedKinds: readonly RouteGroupKind[];
  /** Route kinds in allowedRoutes.kinds that Skein does not support (ResolvedRefs=False InvalidRouteKinds). */
  readonly invalidKinds: readonly string[];
  readonly namespaces: NamespacePolicy;
  /** Accepted condition, before conflicts are known. */
  readonly accepted: Verdict;
  /** Set when another listener on the same address and port already claims this hostname. */
  conflict: string | undefined;
  /** Routes attached (counted whether or not the listener is accepted, as the spec asks). */
  attachedRoutes: number;
  /** The sockets (one per bound address) whose IR listeners carry this listener's routes. */
  binds: readonly Bind[];
}

/** One socket: an IR listener. */
export interface Bind {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface GatewayState {
  readonly gateway: Gateway;
  readonly namespace: string;
  readonly name: string;
  readonly generation: number;
  readonly listeners: ListenerState[];
  /** Gateway-level problem (class not accepted, parameters, address type); undefined when there is none. */
  readonly rejected: Verdict | undefined;
  readonly addresses: AddressResult;
}

/** Whether a listener serves traffic: accepted, not conflicted, taking HTTPRoutes, on a programmed Gateway. */
export function listenerProgrammed(l: ListenerState): boolean {
  return listenerValid(l) && gatewayProgrammed(l.gateway);
}

/** Whether a listener can be configured at all (the Gateway's own state aside). */
export function listenerValid(l: ListenerState): boolean {
  return l.accepted.ok && l.conflict === undefined && l.supportedKinds.length > 0;
}

export function gatewayAccepted(g: GatewayState): boolean {
  return g.rejected === undefined && g.listeners.some(listenerValid);
}

export function gatewayProgrammed(g: GatewayState): boolean {
  return gatewayAccepted(g) && g.addresses.ok;
}

export interface GatewaysResult {
  /** Our Gateways, by `namespace/name`. */
  readonly gateways: ReadonlyMap<string, GatewayState>;
  /** `namespace/name` of every Gateway in the input, ours or not (to tell "not ours" from "missing"). */
  readonly allGateways: ReadonlySet<string>;
  readonly diagnostics: Diagnostic[];
}

/**
 * Step 2: Gateways and their listeners. Only Gateways of our classes are looked at. Each listener is
 * checked on its own (protocol, route kinds, namespace selector); then the listeners of every accepted
 * Gateway are grouped by the socket they bind (address and port), across Gateways, because those merge
 * into one Envoy listener. Within a socket a hostname can be served once: a later listener that repeats
 * one is Conflicted (HostnameConflict) and not programmed. "Later" is by Gateway age (creationTimestamp),
 * then namespace/name, then listener order, so the listener that was there first keeps serving.
 */
export function processGateways(
  gateways: readonly Gateway[],
  classes: ReadonlyMap<string, ClassState>,
  allClassNames: ReadonlySet<string>,
): GatewaysResult {
  const diagnostics: Diagnostic[] = [];
  const allGateways = new Set<string>();
  const ours: GatewayState[] = [];
  for (const gw of gateways) {
    const namespace = gw.metadata?.namespace ?? 'default';
    const name = gw.metadata?.name ?? '';
    allGateways.add(`${namespace}/${name}`);
    const className = gw.spec?.gatewayClassName ?? '';
    const cls = classes.get(className);
    if (cls === undefined) {
      if (!allClassNames.has(className)) {
        diagnostics.push({
          code: GatewayCode.UnknownClass,
          severity: 'warning',
          object: `Gateway/${namespace}/${name}`,
          field: 'spec.gatewayClassName',
          message: `GatewayClass "${className}" does not exist, so no controller serves this Gateway`,
        });
      }
      continue;
    }
    ours.push(gatewayState(gw, namespace, name, cls));
  }

  // Oldest first: the first listener to claim a hostname on a socket keeps it.
  ours.sort(
    (a, b) =>
      compareAge(a.gateway, b.gateway) ||
      compareText(a.namespace, b.namespace) ||
      compareText(a.name, b.name),
  );
  const claims = new Map<string, ListenerState>();
  for (const g of ours) {
    if (g.rejected !== undefined || !g.addresses.ok) continue;
    for (const l of g.listeners) {
      if (!l.accepted.ok || l.supportedKinds.length === 0) continue;
      l.binds = g.addresses.addresses.map((address) => ({
        name: listenerName(address, l.port),
        address,
        port: l.port,
      }));
      for (const bind of l.binds) {
        const claim = `${bind.name}|${l.hostname ?? ''}`;
        const first = claims.get(claim);
        if (first === undefined) {
          claims.set(claim, l);
          continue;
        }
        const host = l.hostname === undefined ? 'any hostname' : `hostname ${l.hostname}`;
        const socket = `${isIP(bind.address) === 6 ? `[${bind.address}]` : bind.address}:${bind.port}`;
        l.conflict ??= `${host} on ${socket} is already served by listener ${first.name} of Gateway ${first.gateway.namespace}/${first.gateway.name}`;
        // Within one Gateway no listener may win (the spec: indistinct listeners are all rejected).
        if (first.gateway === g) {
          first.conflict ??= `${host} on ${socket} is also claimed by listener ${l.name} of the same Gateway`;
        }
      }
    }
  }
  const byKey = new Map<string, GatewayState>();
  for (const g of ours) byKey.set(`${g.namespace}/${g.name}`, g);
  return { gateways: byKey, allGateways, diagnostics };
}

function gatewayState(gw: Gateway, namespace: string, name: string, cls: ClassState): GatewayState {
  const addresses = gatewayAddresses(gw);
  let rejected: Verdict | undefined;
  const params = gw.spec?.infrastructure?.parametersRef;
  if (!cls.accepted) {
    rejected = {
      ok: false,
      reason: 'Invalid',
      message: `GatewayClass ${cls.name} is not accepted: ${cls.message}`,
    };
  } else if (params !== undefined) {
    rejected = {
      ok: false,
      reason: 'InvalidParameters',
      message: `Skein takes no parameters, so infrastructure.parametersRef (${params.kind} ${params.name}) cannot be honoured; remove it`,
    };
  } else if (!addresses.ok && addresses.unsupported) {
    rejected = { ok: false, reason: 'UnsupportedAddress', message: addresses.message };
  }
  const state: GatewayState = {
    gateway: gw,
    namespace,
    name,
    generation: generationOf(gw),
    listeners: [],
    rejected,
    addresses,
  };
  for (const spec of gw.spec?.listeners ?? []) state.listeners.push(listenerState(state, spec));
  return state;
}

type ListenerSpec = NonNullable<Gateway['spec']>['listeners'][number];

function listenerState(gateway: GatewayState, spec: ListenerSpec): ListenerState {
  const http = spec.protocol === 'HTTP';
  const supportedKinds: RouteGroupKind[] = [];
  const invalidKinds: string[] = [];
  const kinds = spec.allowedRoutes?.kinds ?? [];
  if (!http) {
    // No route kind can attach to a listener whose protocol is not served.
  } else if (kinds.length === 0) {
    supportedKinds.push(...HTTP_KINDS);
  } else {
    for (const k of kinds) {
      const group = k.group ?? GATEWAY_GROUP;
      const supported = HTTP_KINDS.find((s) => s.group === group && s.kind === k.kind);
      if (supported === undefined) invalidKinds.push(group === '' ? k.kind : `${group}/${k.kind}`);
      else if (!supportedKinds.includes(supported)) supportedKinds.push(supported);
    }
  }

  const from = spec.allowedRoutes?.namespaces?.from ?? 'Same';
  const selector = spec.allowedRoutes?.namespaces?.selector;
  let namespaces: NamespacePolicy;
  let selectorProblem: string | undefined;
  if (from === 'All' || from === 'Same') {
    namespaces = { from };
  } else if (from === 'Selector') {
    const compiled: CompiledSelector =
      selector === undefined
        ? { ok: false, problem: 'is required when from is Selector' }
        : compileSelector(selector);
    if (!compiled.ok) selectorProblem = `allowedRoutes.namespaces.selector: ${compiled.problem}`;
    namespaces = { from, selector: compiled };
  } else {
    selectorProblem = `allowedRoutes.namespaces.from "${String(from)}" is not All, Same or Selector`;
    namespaces = { from: 'Same' };
  }

  let accepted: Verdict;
  if (!http) {
    accepted = {
      ok: false,
      reason: 'UnsupportedProtocol',
      message: `protocol ${spec.protocol} is not supported yet; Skein serves HTTP listeners`,
    };
  } else if (selectorProblem !== undefined) {
    accepted = { ok: false, reason: 'UnsupportedValue', message: selectorProblem };
  } else {
    accepted = { ok: true, reason: 'Accepted', message: 'the listener is valid' };
  }
  return {
    gateway,
    name: spec.name,
    port: spec.port,
    protocol: spec.protocol,
    hostname: spec.hostname,
    supportedKinds,
    invalidKinds,
    namespaces,
    accepted,
    conflict: undefined,
    attachedRoutes: 0,
    binds: [],
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
