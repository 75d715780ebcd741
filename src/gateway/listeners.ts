import { isIP } from 'node:net';
import type { IrL4Route, IrListenerProtocol, IrSecret } from '../model/ir.js';
import { listenerName } from '../model/names.js';
import type { Diagnostic, Gateway, Namespace, ReferenceGrant, Secret } from '../sources/objects.js';
import { type AddressResult, gatewayAddresses } from './addresses.js';
import { type CertificateRef, SecretIndex } from './certificates.js';
import { generationOf } from './conditions.js';
import type { ClassState } from './gatewayClasses.js';
import { GatewayCode } from './gatewayCodes.js';
import { type CompiledSelector, compileSelector } from './labelSelector.js';
import { NamespaceIndex } from './namespaces.js';
import { compareAge } from './precedence.js';
import { ReferenceGrantIndex } from './referenceGrants.js';

/*
 * ## How route processors use this step (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute)
 *
 * processGateways() resolves every listener of our Gateways into a ListenerState:
 *
 * - `protocol` as written, `irProtocol` the IR listener protocol it becomes (undefined: not supported);
 * - `hostname` (undefined: any; always undefined for TCP and UDP, which have none);
 * - `tls`: for HTTPS and TLS, the mode and the IR secrets of the valid certificateRefs;
 * - `supportedKinds`: the route kinds it takes (by default HTTP/HTTPS: HTTPRoute, GRPCRoute; TLS:
 *   TLSRoute; TCP: TCPRoute; UDP: UDPRoute); `namespaces`: allowedRoutes.namespaces;
 * - `binds`: the IR listeners (sockets) it is part of, by name (one per Gateway address);
 * - `attachedRoutes`: the count reported in status, reset to 0 at the start of every build.
 *
 * A route processor, for each parentRef (see parents.ts):
 *
 * 1. selects listeners by sectionName and port, keeps those where `admitsRoute(listener, kind, ns)`
 *    (kind supported and namespace allowed, with Namespace labels from the ObjectSet);
 * 2. for TLSRoute, intersects hostnames with `intersectHostnames(listener.hostname, route.hostnames)`;
 * 3. counts `listener.attachedRoutes++` once per route and listener, whether or not the listener is
 *    programmed (the spec counts attached routes, not served ones);
 * 4. L7 kinds (HTTPRoute, GRPCRoute) hand RouteStates to assembleIr as before. L4 kinds hand it
 *    `L4Attachment`s (below): an IR L4 route per listener it attaches to, with the hostnames it has
 *    there (TLS; empty for TCP/UDP) and its weighted backends (IR backend names, built by BackendIndex
 *    with the `tcp`/`udp` protocol). assembleIr keeps those whose listener is `listenerProgrammed`, puts
 *    them in the `l4Routes` of every IR listener of `listener.binds` (a route reaching one socket through
 *    several listeners is merged: same name, hostnames united), sorted by name, and adds their backends.
 *
 * IR listeners by protocol (made in assembleIr): HTTP and HTTPS have virtual hosts (HTTPS: `tls` with
 * one certificate set per Gateway listener: its hostname, or none for the listener without hostname);
 * TLS has `tls` (Passthrough: no certificates; Terminate: certificate sets as HTTPS) and `l4Routes`;
 * TCP and UDP have `l4Routes` only. An IR listener exists for every socket with a programmed listener,
 * even with no route: Envoy then closes connections (and drops datagrams) that nothing routes.
 */

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

export interface RouteGroupKind {
  readonly group: string;
  readonly kind: string;
}

const kinds = (...names: string[]): readonly RouteGroupKind[] =>
  names.map((kind) => ({ group: GATEWAY_GROUP, kind }));

/** The route kinds each supported protocol takes: all of them when allowedRoutes.kinds is empty. */
export const ROUTE_KINDS: Readonly<Record<IrListenerProtocol, readonly RouteGroupKind[]>> = {
  HTTP: kinds('HTTPRoute', 'GRPCRoute'),
  HTTPS: kinds('HTTPRoute', 'GRPCRoute'),
  TLS: kinds('TLSRoute'),
  TCP: kinds('TCPRoute'),
  UDP: kinds('UDPRoute'),
};

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

/** How a listener handles TLS (HTTPS, TLS). */
export interface ListenerTls {
  readonly mode: 'Terminate' | 'Passthrough';
  /** The IR secrets of the certificateRefs that resolved, in the order written. Empty for Passthrough. */
  readonly secrets: readonly IrSecret[];
}

export type ConflictReason = 'HostnameConflict' | 'ProtocolConflict';

export interface ListenerState {
  readonly gateway: GatewayState;
  readonly name: string;
  readonly port: number;
  /** As written in the Gateway. */
  readonly protocol: string;
  /** The IR listener protocol; undefined when Skein does not support the protocol. */
  readonly irProtocol: IrListenerProtocol | undefined;
  /** undefined: any hostname. Always undefined for TCP and UDP (the spec ignores it there). */
  readonly hostname: string | undefined;
  /** HTTPS and TLS listeners only. */
  readonly tls: ListenerTls | undefined;
  readonly supportedKinds: readonly RouteGroupKind[];
  /** Route kinds in allowedRoutes.kinds that Skein does not support (ResolvedRefs=False InvalidRouteKinds). */
  readonly invalidKinds: readonly string[];
  /** ResolvedRefs: route kinds and certificateRefs. Not ok: the reason and what failed. */
  readonly refs: Verdict;
  readonly namespaces: NamespacePolicy;
  /** Accepted condition, before conflicts are known. */
  readonly accepted: Verdict;
  /** Why the listener is Conflicted (the message), when it is. */
  conflict: string | undefined;
  /** The reason of the Conflicted condition, when `conflict` is set. */
  conflictReason: ConflictReason | undefined;
  /** Routes attached (counted whether or not the listener is accepted, as the spec asks). */
  attachedRoutes: number;
  /** The sockets (one per bound address) whose IR listeners carry this listener's routes. */
  binds: readonly Bind[];
}

/** One socket: an IR listener. */
export interface Bind {
  /** The IR listener's name. */
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

/**
 * A connection-level route (TLSRoute, TCPRoute, UDPRoute) on one Gateway listener, as its processor
 * hands it to assembleIr (see the top of this file). `route.hostnames` are those it serves on this
 * listener (TLS), empty for TCP and UDP.
 */
export interface L4Attachment {
  readonly listener: ListenerState;
  readonly route: IrL4Route;
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
  /** The labels of every namespace, for allowedRoutes selectors (shared by every Gateway of a build). */
  readonly namespaceIndex: NamespaceIndex;
}

/** Whether a listener serves traffic: valid, not conflicted, on a programmed Gateway. */
export function listenerProgrammed(l: ListenerState): boolean {
  return listenerValid(l) && gatewayProgrammed(l.gateway);
}

/**
 * Whether a listener can be configured at all (the Gateway's own state aside): accepted, not
 * conflicted, taking some route kind, and, when it terminates TLS, with a certificate that resolved.
 */
export function listenerValid(l: ListenerState): boolean {
  return l.accepted.ok && l.conflict === undefined && l.supportedKinds.length > 0 && hasCertificates(l);
}

function hasCertificates(l: ListenerState): boolean {
  return l.tls === undefined || l.tls.mode === 'Passthrough' || l.tls.secrets.length > 0;
}

export function gatewayAccepted(g: GatewayState): boolean {
  return g.rejected === undefined && g.listeners.some(listenerValid);
}

export function gatewayProgrammed(g: GatewayState): boolean {
  return gatewayAccepted(g) && g.addresses.ok;
}

/**
 * allowedRoutes: whether a route of `kind` (group gateway.networking.k8s.io) in `routeNamespace` may
 * attach to the listener: the kind is one it supports, and the namespace is admitted (All; Same as the
 * Gateway; or one whose labels the selector matches).
 */
export function admitsRoute(l: ListenerState, kind: string, routeNamespace: string): boolean {
  if (!l.supportedKinds.some((k) => k.group === GATEWAY_GROUP && k.kind === kind)) return false;
  const ns = l.namespaces;
  if (ns.from === 'All') return true;
  if (ns.from === 'Same') return routeNamespace === l.gateway.namespace;
  return ns.selector.ok && ns.selector.matches(l.gateway.namespaceIndex.labels(routeNamespace));
}

/** Why a listener does not serve, in a word or two (for route status messages). */
export function listenerWhy(l: ListenerState): string {
  const gw = l.gateway;
  if (gw.rejected !== undefined) return `Gateway not accepted: ${gw.rejected.reason}`;
  if (!gw.addresses.ok) return 'Gateway address not usable';
  if (!l.accepted.ok) return l.accepted.reason;
  if (l.conflictReason !== undefined) return l.conflictReason;
  if (!hasCertificates(l)) return l.refs.reason;
  if (!listenerValid(l)) return 'invalid';
  return 'Gateway not accepted';
}

export interface GatewaysResult {
  /** Our Gateways, by `namespace/name`. */
  readonly gateways: ReadonlyMap<string, GatewayState>;
  /** `namespace/name` of every Gateway in the input, ours or not (to tell "not ours" from "missing"). */
  readonly allGateways: ReadonlySet<string>;
  readonly diagnostics: Diagnostic[];
}

/** What besides Gateways and classes the listeners read. */
export interface ListenerInputs {
  readonly secrets?: readonly Secret[];
  readonly referenceGrants?: readonly ReferenceGrant[];
  readonly namespaces?: readonly Namespace[];
  readonly reservedSockets?: readonly ReservedSocket[];
}

/**
 * A TCP socket something other than the gateway Envoy holds (its admin port, Skein's status port). A
 * listener that would bind it, or bind the same port on the any-address (0.0.0.0 or ::, which overlaps
 * every address), is not accepted: PortUnavailable.
 */
export interface ReservedSocket {
  readonly address: string;
  readonly port: number;
  /** Who holds it, for the message: `Envoy's admin interface`. */
  readonly holder: string;
}

/**
 * Step 2: Gateways and their listeners. Only Gateways of our classes are looked at. Each listener is
 * checked on its own (protocol, TLS and certificateRefs, route kinds, namespace selector); then the
 * listeners of every accepted Gateway are grouped by the socket they bind (address, port and transport),
 * across Gateways, because those merge into one Envoy listener:
 *
 * - one socket carries one kind of listener: HTTP, HTTPS, TLS Passthrough, TLS Terminate, TCP or UDP
 *   (UDP is another socket than TCP on the same port, so those never conflict). A listener of another
 *   kind is Conflicted (ProtocolConflict). HTTPS with TLS, and TLS Passthrough with Terminate, on one
 *   port are conflicts here: the IR has one protocol and one TLS mode per socket;
 * - within a socket a hostname can be served once (HTTP, HTTPS and TLS merge by hostname): a listener
 *   that repeats one is Conflicted (HostnameConflict). TCP and UDP have no hostname, so a second TCP
 *   (or UDP) listener on a socket is Conflicted (ProtocolConflict);
 * - within one Gateway no listener wins a conflict (the spec: indistinct listeners are all rejected);
 *   across Gateways the older one (creationTimestamp, then namespace/name, then listener order) keeps
 *   serving, so that a new Gateway cannot take traffic from one that was there first.
 *
 * A Conflicted listener is not programmed; the other listeners of its Gateway are (compare Cilium
 * #34982, where one bad listener took the whole Gateway down).
 */
export function processGateways(
  gateways: readonly Gateway[],
  classes: ReadonlyMap<string, ClassState>,
  allClassNames: ReadonlySet<string>,
  inputs: ListenerInputs = {},
): GatewaysResult {
  const diagnostics: Diagnostic[] = [];
  const allGateways = new Set<string>();
  const ours: GatewayState[] = [];
  const namespaceIndex = new NamespaceIndex(inputs.namespaces ?? []);
  const secrets = new SecretIndex(
    inputs.secrets ?? [],
    new ReferenceGrantIndex(inputs.referenceGrants ?? []),
  );
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
    ours.push(gatewayState(gw, namespace, name, cls, namespaceIndex, secrets, inputs.reservedSockets ?? []));
  }

  // Oldest first: the first listener to claim a socket (and a hostname on it) keeps it.
  ours.sort(
    (a, b) =>
      compareAge(a.gateway, b.gateway) ||
      compareText(a.namespace, b.namespace) ||
      compareText(a.name, b.name),
  );
  findConflicts(ours);
  const byKey = new Map<string, GatewayState>();
  for (const g of ours) byKey.set(`${g.namespace}/${g.name}`, g);
  return { gateways: byKey, allGateways, diagnostics };
}

/** What shares a socket: the IR protocol, and for TLS its mode. */
function socketKind(l: ListenerState): string {
  return l.irProtocol === 'TLS' ? `TLS (${l.tls?.mode ?? 'Terminate'})` : (l.irProtocol ?? l.protocol);
}

function transportOf(l: ListenerState): 'tcp' | 'udp' {
  return l.irProtocol === 'UDP' ? 'udp' : 'tcp';
}

function findConflicts(ours: readonly GatewayState[]): void {
  /** The first listener to take each socket; its kind is the socket's. */
  const owners = new Map<string, ListenerState>();
  /** The first listener to claim each socket and hostname. */
  const claims = new Map<string, ListenerState>();
  const conflict = (l: ListenerState, reason: ConflictReason, message: string): void => {
    if (l.conflict !== undefined) return;
    l.conflict = message;
    l.conflictReason = reason;
  };
  for (const g of ours) {
    if (g.rejected !== undefined || !g.addresses.ok) continue;
    const candidates = g.listeners.filter(
      (l) => l.accepted.ok && l.supportedKinds.length > 0 && hasCertificates(l),
    );
    for (const l of candidates) {
      const transport = transportOf(l);
      l.binds = g.addresses.addresses.map((address) => ({
        name: listenerName(address, l.port, transport),
        address,
        port: l.port,
      }));
    }

    // Within the Gateway: listeners of different kinds on one port all conflict.
    const byPort = new Map<string, ListenerState[]>();
    for (const l of candidates) {
      const key = `${transportOf(l)}/${l.port}`;
      const list = byPort.get(key);
      if (list === undefined) byPort.set(key, [l]);
      else list.push(l);
    }
    for (const list of byPort.values()) {
      const kindsHere = [...new Set(list.map(socketKind))];
      if (kindsHere.length < 2) continue;
      for (const l of list) {
        const others = list.filter((o) => socketKind(o) !== socketKind(l)).map((o) => o.name);
        conflict(
          l,
          'ProtocolConflict',
          `port ${l.port} is ${socketKind(l)} here, but listener(s) ${others.join(', ')} of the same Gateway use it for ${kindsHere.filter((k) => k !== socketKind(l)).join(', ')}`,
        );
      }
    }

    // Against the sockets and hostnames claimed so far (by older Gateways and earlier listeners).
    for (const l of candidates) {
      if (l.conflict !== undefined) continue;
      for (const bind of l.binds) {
        const owner = owners.get(bind.name);
        if (owner === undefined || socketKind(owner) === socketKind(l)) continue;
        conflict(
          l,
          'ProtocolConflict',
          `${socketText(bind)} already serves ${socketKind(owner)} for listener ${owner.name} of Gateway ${owner.gateway.namespace}/${owner.gateway.name}; this listener is ${socketKind(l)}`,
        );
      }
      if (l.conflict !== undefined) continue;
      const byHostname = l.irProtocol === 'HTTP' || l.irProtocol === 'HTTPS' || l.irProtocol === 'TLS';
      for (const bind of l.binds) {
        if (!owners.has(bind.name)) owners.set(bind.name, l);
        const claim = `${bind.name}|${l.hostname ?? ''}`;
        const first = claims.get(claim);
        if (first === undefined) {
          claims.set(claim, l);
          continue;
        }
        const sameGateway = first.gateway === g;
        if (byHostname) {
          const host = l.hostname === undefined ? 'any hostname' : `hostname ${l.hostname}`;
          conflict(
            l,
            'HostnameConflict',
            `${host} on ${socketText(bind)} is already served by listener ${first.name} of Gateway ${first.gateway.namespace}/${first.gateway.name}`,
          );
          if (sameGateway) {
            conflict(
              first,
              'HostnameConflict',
              `${host} on ${socketText(bind)} is also claimed by listener ${l.name} of the same Gateway`,
            );
          }
        } else {
          conflict(
            l,
            'ProtocolConflict',
            `${socketText(bind)} already carries ${socketKind(first)} listener ${first.name} of Gateway ${first.gateway.namespace}/${first.gateway.name}; a ${socketKind(l)} port takes one listener`,
          );
          if (sameGateway) {
            conflict(
              first,
              'ProtocolConflict',
              `${socketText(bind)} is also claimed by ${socketKind(l)} listener ${l.name} of the same Gateway; a ${socketKind(l)} port takes one listener`,
            );
          }
        }
      }
    }
  }
}

function socketText(bind: Bind): string {
  const host = isIP(bind.address) === 6 ? `[${bind.address}]` : bind.address;
  return bind.name.endsWith('/udp') ? `${host}:${bind.port}/udp` : `${host}:${bind.port}`;
}

function gatewayState(
  gw: Gateway,
  namespace: string,
  name: string,
  cls: ClassState,
  namespaceIndex: NamespaceIndex,
  secrets: SecretIndex,
  reserved: readonly ReservedSocket[],
): GatewayState {
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
    namespaceIndex,
  };
  for (const spec of gw.spec?.listeners ?? []) {
    state.listeners.push(listenerState(state, spec, secrets, reservedBy(spec, addresses, reserved)));
  }
  return state;
}

type ListenerSpec = NonNullable<Gateway['spec']>['listeners'][number];

const IR_PROTOCOLS: ReadonlySet<string> = new Set<IrListenerProtocol>(['HTTP', 'HTTPS', 'TLS', 'TCP', 'UDP']);

/** The reserved socket a listener would bind on one of the Gateway's addresses, if any. */
function reservedBy(
  spec: ListenerSpec,
  addresses: AddressResult,
  reserved: readonly ReservedSocket[],
): ReservedSocket | undefined {
  if (!addresses.ok || spec.protocol === 'UDP') return undefined;
  const any = (a: string): boolean => a === '0.0.0.0' || a === '::';
  return reserved.find(
    (r) =>
      r.port === spec.port && addresses.addresses.some((a) => a === r.address || any(a) || any(r.address)),
  );
}

function listenerState(
  gateway: GatewayState,
  spec: ListenerSpec,
  secretIndex: SecretIndex,
  reserved: ReservedSocket | undefined,
): ListenerState {
  const irProtocol = IR_PROTOCOLS.has(spec.protocol) ? (spec.protocol as IrListenerProtocol) : undefined;

  // Route kinds: those allowedRoutes.kinds names that the protocol takes; all of them by default.
  const supportedKinds: RouteGroupKind[] = [];
  const invalidKinds: string[] = [];
  const allowed = irProtocol === undefined ? [] : ROUTE_KINDS[irProtocol];
  const kindsWritten = spec.allowedRoutes?.kinds ?? [];
  if (irProtocol === undefined) {
    // No route kind can attach to a listener whose protocol is not served.
  } else if (kindsWritten.length === 0) {
    supportedKinds.push(...allowed);
  } else {
    for (const k of kindsWritten) {
      const group = k.group ?? GATEWAY_GROUP;
      const supported = allowed.find((s) => s.group === group && s.kind === k.kind);
      if (supported === undefined) invalidKinds.push(group === '' ? k.kind : `${group}/${k.kind}`);
      else if (!supportedKinds.includes(supported)) supportedKinds.push(supported);
    }
  }

  const from = spec.allowedRoutes?.namespaces?.from ?? 'Same';
  const selector = spec.allowedRoutes?.namespaces?.selector;
  let namespaces: NamespacePolicy;
  let problem: string | undefined;
  if (from === 'All' || from === 'Same') {
    namespaces = { from };
  } else if (from === 'Selector') {
    const compiled: CompiledSelector =
      selector === undefined
        ? { ok: false, problem: 'is required when from is Selector' }
        : compileSelector(selector);
    if (!compiled.ok) problem = `allowedRoutes.namespaces.selector: ${compiled.problem}`;
    namespaces = { from, selector: compiled };
  } else {
    problem = `allowedRoutes.namespaces.from "${String(from)}" is not All, Same or Selector`;
    namespaces = { from: 'Same' };
  }

  // TLS: HTTPS terminates; TLS terminates by default, or passes through. TCP, UDP and HTTP take none.
  let tls: ListenerTls | undefined;
  const certProblems: { reason: string; message: string }[] = [];
  const mode = spec.tls?.mode ?? 'Terminate';
  if (irProtocol === 'HTTPS' || irProtocol === 'TLS') {
    if (spec.tls === undefined) {
      problem ??= `protocol ${spec.protocol} needs tls (mode and certificateRefs)`;
    } else if (mode !== 'Terminate' && mode !== 'Passthrough') {
      problem ??= `tls.mode "${String(mode)}" is not Terminate or Passthrough`;
    } else if (irProtocol === 'HTTPS' && mode === 'Passthrough') {
      problem ??= 'tls.mode Passthrough is for protocol TLS; HTTPS terminates TLS';
    }
    const refs: readonly CertificateRef[] = spec.tls?.certificateRefs ?? [];
    const resolved: IrSecret[] = [];
    if (mode === 'Terminate' && spec.tls !== undefined) {
      if (refs.length === 0) {
        certProblems.push({
          reason: 'InvalidCertificateRef',
          message: 'tls.mode Terminate needs at least one certificateRef',
        });
      }
      for (const [i, ref] of refs.entries()) {
        const r = secretIndex.resolve(ref, gateway.namespace);
        if (r.ok) {
          if (!resolved.some((s) => s.name === r.secret.name)) resolved.push(r.secret);
        } else {
          certProblems.push({ reason: r.reason, message: `certificateRefs[${i}]: ${r.message}` });
        }
      }
    }
    tls = { mode: mode === 'Passthrough' ? 'Passthrough' : 'Terminate', secrets: resolved };
  } else if (irProtocol !== undefined && spec.tls !== undefined) {
    problem ??= `protocol ${spec.protocol} takes no tls`;
  }

  let accepted: Verdict;
  if (irProtocol === undefined) {
    accepted = {
      ok: false,
      reason: 'UnsupportedProtocol',
      message: `protocol ${spec.protocol} is not supported; Skein serves HTTP, HTTPS, TLS, TCP and UDP listeners`,
    };
  } else if (problem !== undefined) {
    accepted = { ok: false, reason: 'UnsupportedValue', message: problem };
  } else if (reserved !== undefined) {
    accepted = {
      ok: false,
      reason: 'PortUnavailable',
      message: `port ${spec.port} is held by ${reserved.holder} on ${reserved.address}; pick another port`,
    };
  } else {
    accepted = { ok: true, reason: 'Accepted', message: 'the listener is valid' };
  }

  // ResolvedRefs: the first certificate problem names the reason (RefNotPermitted before
  // InvalidCertificateRef when both occur, as the more specific); route kinds come after certificates.
  let refs: Verdict;
  if (certProblems.length > 0) {
    const notPermitted = certProblems.find((p) => p.reason === 'RefNotPermitted');
    const messages = certProblems.map((p) => p.message);
    if (invalidKinds.length > 0) messages.push(`route kinds not supported: ${invalidKinds.join(', ')}`);
    const served = tls?.secrets.length ?? 0;
    refs = {
      ok: false,
      reason: notPermitted?.reason ?? 'InvalidCertificateRef',
      message: `${messages.join('; ')}${served > 0 ? `; serving the ${served} certificate(s) that resolved` : ''}`,
    };
  } else if (invalidKinds.length > 0) {
    refs = {
      ok: false,
      reason: 'InvalidRouteKinds',
      message: `route kinds not supported: ${invalidKinds.join(', ')}; supported on ${spec.protocol}: ${allowed.map((k) => k.kind).join(', ') || 'none'}`,
    };
  } else {
    refs = { ok: true, reason: 'ResolvedRefs', message: 'all references resolved' };
  }

  const hostname = irProtocol === 'TCP' || irProtocol === 'UDP' ? undefined : spec.hostname;
  return {
    gateway,
    name: spec.name,
    port: spec.port,
    protocol: spec.protocol,
    irProtocol,
    hostname,
    tls,
    supportedKinds,
    invalidKinds,
    refs,
    namespaces,
    accepted,
    conflict: undefined,
    conflictReason: undefined,
    attachedRoutes: 0,
    binds: [],
  };
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
