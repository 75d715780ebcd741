import type { IrBackend, IrBackendProtocol, IrEndpoint } from '../model/ir.js';
import { backendName } from '../model/names.js';
import type { EndpointSlice, ReferenceGrant, Service } from '../sources/objects.js';
import type { BackendTlsIndex, UpstreamTlsOutcome } from './backendTlsPolicies.js';
import { RouteReason } from './conditions.js';
import { ReferenceGrantIndex } from './referenceGrants.js';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** A backendRef as written (HTTPBackendRef without its filters). */
export interface BackendRefSpec {
  readonly group?: string;
  readonly kind?: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
}

/**
 * A backendRef resolved: the IR backend it names, or why it names none (a ResolvedRefs reason).
 * `websocket`: the Service port says its HTTP carries WebSocket (appProtocol `kubernetes.io/ws` or
 * `kubernetes.io/wss`), so routes to it allow the upgrade.
 */
export type BackendResolution =
  | { readonly ok: true; readonly backend: string; readonly websocket?: true }
  | { readonly ok: false; readonly reason: string; readonly message: string };

/**
 * Who holds a backendRef, and how it speaks to the backend:
 *
 * - `http`: what the Service port's appProtocol says (HTTP/1.1, h2c, WebSocket; HTTPRoute);
 * - `h2c`: cleartext HTTP/2 whatever the port says (GRPCRoute: gRPC is HTTP/2);
 * - `tcp`: the bytes of a connection (TCPRoute, TLSRoute), to a TCP port;
 * - `udp`: datagrams (UDPRoute), to a UDP port.
 *
 * `kind` is the route kind, which ReferenceGrants name in `from`.
 */
export interface BackendRefHolder {
  readonly kind: string;
  readonly speaks: 'http' | 'h2c' | 'tcp' | 'udp';
}

export const HTTP_ROUTE_HOLDER: BackendRefHolder = { kind: 'HTTPRoute', speaks: 'http' };

/** What a build knows besides Services and EndpointSlices. */
export interface BackendIndexOptions {
  readonly referenceGrants?: readonly ReferenceGrant[];
  /** TLS to backends, from BackendTLSPolicies (see backendTlsPolicies.ts). */
  readonly tls?: BackendTlsIndex;
}

type ServicePort = NonNullable<NonNullable<Service['spec']>['ports']>[number];

/**
 * Step 4: Services and EndpointSlices, indexed once per build, and the IR backends built from them.
 * IrBackend objects are kept between builds (in a BackendCache) and reused while their Service and
 * EndpointSlices are the same objects, so unchanged backends keep their identity downstream.
 */
export class BackendIndex {
  readonly #services = new Map<string, Service>();
  readonly #slices = new Map<string, EndpointSlice[]>();
  readonly #cache: BackendCache;
  /** Backends resolved while the Services are the ones of this build, by IR name (see `resolutions`). */
  readonly #used: Map<string, Resolved>;
  readonly #grants: ReferenceGrantIndex;
  readonly #tls: BackendTlsIndex | undefined;

  constructor(
    services: readonly Service[],
    slices: readonly EndpointSlice[],
    cache: BackendCache,
    options: BackendIndexOptions = {},
  ) {
    this.#cache = cache;
    const grants = options.referenceGrants ?? [];
    this.#tls = options.tls;
    this.#used = cache.resolutionsFor(services, grants, options.tls?.policies ?? []);
    this.#grants = new ReferenceGrantIndex(grants);
    for (const s of services)
      this.#services.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s);
    for (const slice of slices) {
      const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (service === undefined) continue;
      const key = `${slice.metadata?.namespace ?? 'default'}/${service}`;
      const list = this.#slices.get(key);
      if (list === undefined) this.#slices.set(key, [slice]);
      else list.push(slice);
    }
  }

  /**
   * Stands for how backendRefs resolve: the same object from build to build while the Services,
   * ReferenceGrants and BackendTLSPolicies are the same objects (EndpointSlices play no part in
   * resolving). A route whose backendRefs were resolved under the same `resolutions` resolves the same
   * way, and needs no `resolve` calls again.
   */
  get resolutions(): object {
    return this.#used;
  }

  /**
   * Resolves one backendRef of a route in `routeNamespace`, held by a route of `holder`'s kind. Only
   * core Services resolve; one in another namespace only when a ReferenceGrant there allows it.
   */
  resolve(
    ref: BackendRefSpec,
    routeNamespace: string,
    holder: BackendRefHolder = HTTP_ROUTE_HOLDER,
  ): BackendResolution {
    const group = ref.group ?? '';
    const kind = ref.kind ?? 'Service';
    const namespace = ref.namespace ?? routeNamespace;
    const what = `${namespace}/${ref.name}`;
    if (group !== '' || kind !== 'Service') {
      return {
        ok: false,
        reason: RouteReason.InvalidKind,
        message: `${group === '' ? '' : `${group}/`}${kind} ${what} is not a supported backend kind; use a core Service`,
      };
    }
    if (
      namespace !== routeNamespace &&
      !this.#grants.allows(
        { group: GATEWAY_GROUP, kind: holder.kind, namespace: routeNamespace },
        { group: '', kind: 'Service', namespace, name: ref.name },
      )
    ) {
      return {
        ok: false,
        reason: RouteReason.RefNotPermitted,
        message: `Service ${what} is in another namespace, and no ReferenceGrant in namespace ${namespace} allows ${holder.kind}s from namespace ${routeNamespace} to refer to it`,
      };
    }
    const service = this.#services.get(`${namespace}/${ref.name}`);
    if (service === undefined) {
      return { ok: false, reason: RouteReason.BackendNotFound, message: `Service ${what} not found` };
    }
    if (ref.port === undefined) {
      return {
        ok: false,
        reason: RouteReason.BackendNotFound,
        message: `the reference to Service ${what} has no port`,
      };
    }
    // A Service may have one port number twice, for TCP and for UDP: UDPRoutes take the UDP one.
    const transport = holder.speaks === 'udp' ? 'UDP' : 'TCP';
    const ports = service.spec?.ports?.filter((p) => p.port === ref.port) ?? [];
    const port = ports.find((p) => (p.protocol ?? 'TCP') === transport);
    if (port === undefined) {
      const other = ports[0];
      return other === undefined
        ? {
            ok: false,
            reason: RouteReason.BackendNotFound,
            message: `Service ${what} has no port ${ref.port}`,
          }
        : {
            ok: false,
            reason: RouteReason.UnsupportedProtocol,
            message: `Service ${what} port ${ref.port} is ${other.protocol ?? 'TCP'}; ${holder.kind}s need a ${transport} port`,
          };
    }
    const tls = this.#tls?.forPort(namespace, ref.name, port.name ?? '');
    const how = backendProtocol(port, holder, tls);
    if (!how.ok) {
      return {
        ok: false,
        reason: RouteReason.UnsupportedProtocol,
        message: `Service ${what} port ${ref.port}: ${how.problem}`,
      };
    }
    const name = backendName(namespace, ref.name, ref.port, how.suffix);
    this.#used.set(name, { service, port, protocol: how.protocol });
    return { ok: true, backend: name, ...(how.websocket ? { websocket: true as const } : {}) };
  }

  /** The IR backend of a name `resolve` returned during this build. */
  backend(name: string): IrBackend | undefined {
    const used = this.#used.get(name);
    if (used === undefined) return undefined;
    const { service, port, protocol } = used;
    const namespace = service.metadata?.namespace ?? 'default';
    const key = `${namespace}/${service.metadata?.name ?? ''}`;
    // TLS is for HTTP backends; the bytes of TCP and TLS routes and UDP datagrams go as they come.
    const tls =
      protocol === 'http1' || protocol === 'h2c'
        ? this.#tls?.forPort(namespace, service.metadata?.name ?? '', port.name ?? '')
        : undefined;
    return this.#cache.get(name, service, port, this.#slices.get(key) ?? [], protocol, tls);
  }
}

/**
 * IrBackend objects across builds, reused while the Service, the port and the EndpointSlices are the
 * same objects (the sources keep identity for unchanged objects). Entries not used by a build are
 * dropped at its end.
 */
export class BackendCache {
  #entries = new Map<string, CacheEntry>();
  #next = new Map<string, CacheEntry>();
  #services: readonly Service[] = [];
  #grants: readonly ReferenceGrant[] = [];
  #policies: readonly object[] = [];
  #resolved = new Map<string, Resolved>();

  /**
   * The resolutions of the last build if `services`, `grants` and `policies` (BackendTLSPolicies) are
   * the same objects as then (names resolved then still resolve to the same Service and port, with
   * the same permission and protocol), else a new, empty set.
   */
  resolutionsFor(
    services: readonly Service[],
    grants: readonly ReferenceGrant[] = [],
    policies: readonly object[] = [],
  ): Map<string, Resolved> {
    if (
      !sameItems(this.#services, services) ||
      !sameItems(this.#grants, grants) ||
      !sameItems(this.#policies, policies)
    ) {
      this.#services = [...services];
      this.#grants = [...grants];
      this.#policies = [...policies];
      this.#resolved = new Map();
    }
    return this.#resolved;
  }

  get(
    name: string,
    service: Service,
    port: ServicePort,
    slices: readonly EndpointSlice[],
    protocol?: IrBackendProtocol,
    tls?: UpstreamTlsOutcome,
  ): IrBackend {
    const old = this.#next.get(name) ?? this.#entries.get(name);
    if (
      old !== undefined &&
      old.service === service &&
      old.port === port &&
      old.protocol === protocol &&
      old.tlsKey === tls?.key &&
      sameItems(old.slices, slices)
    ) {
      this.#next.set(name, old);
      return old.backend;
    }
    const backend = buildBackend(name, port, slices, protocol, tls);
    this.#next.set(name, { service, port, slices: [...slices], protocol, tlsKey: tls?.key, backend });
    return backend;
  }

  /** Ends a build: what it did not use is forgotten. */
  commit(): void {
    this.#entries = this.#next;
    this.#next = new Map();
  }
}

interface Resolved {
  readonly service: Service;
  readonly port: ServicePort;
  readonly protocol: IrBackendProtocol;
}

interface CacheEntry {
  readonly service: Service;
  readonly port: ServicePort;
  readonly slices: readonly EndpointSlice[];
  readonly protocol: IrBackendProtocol | undefined;
  readonly tlsKey: string | undefined;
  readonly backend: IrBackend;
}

/**
 * One Service port as an IR backend. Its endpoints come from the Service's EndpointSlices: every slice
 * port whose name equals the Service port's name (both may be empty) and whose protocol is the port's,
 * times every address of every endpoint; an endpoint is ready unless its `ready` condition is false.
 * FQDN slices are skipped (Envoy needs IP addresses here). An address listed twice is ready if any
 * listing is.
 *
 * `protocol` is how Envoy speaks to it (default: what the port's appProtocol says); `tls` the
 * BackendTLSPolicy that applies, if any. A port whose policy is invalid gets no endpoints: its
 * requests fail (503) rather than go out in clear text.
 */
export function buildBackend(
  name: string,
  port: ServicePort,
  slices: readonly EndpointSlice[],
  protocol?: IrBackendProtocol,
  tls?: UpstreamTlsOutcome,
): IrBackend {
  const endpoints = new Map<string, IrEndpoint>();
  const portName = port.name ?? '';
  const transport = port.protocol ?? 'TCP';
  for (const slice of slices) {
    if (slice.addressType === 'FQDN' || tls?.invalid !== undefined) continue;
    for (const sp of slice.ports ?? []) {
      if ((sp.name ?? '') !== portName || sp.port === undefined) continue;
      if ((sp.protocol ?? 'TCP') !== transport) continue;
      for (const e of slice.endpoints ?? []) {
        const ready = e.conditions?.ready !== false;
        for (const address of e.addresses) {
          const key = `${address}|${sp.port}`;
          const seen = endpoints.get(key);
          if (seen === undefined || (!seen.ready && ready))
            endpoints.set(key, { address, port: sp.port, ready });
        }
      }
    }
  }
  const sorted = [...endpoints.values()].sort((a, b) =>
    a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port,
  );
  const own = transport === 'UDP' ? 'udp' : port.appProtocol === 'kubernetes.io/h2c' ? 'h2c' : 'http1';
  return {
    name,
    protocol: protocol ?? own,
    endpoints: sorted,
    ...(tls?.tls === undefined ? {} : { tls: tls.tls }),
  };
}

type ProtocolChoice =
  | {
      readonly ok: true;
      readonly protocol: IrBackendProtocol;
      /** The backend name's protocol part when it is not the port's own (see backendName). */
      readonly suffix: string | undefined;
      readonly websocket: boolean;
    }
  | { readonly ok: false; readonly problem: string };

/**
 * How Envoy speaks to a Service port for a route of `holder`'s kind, or why it cannot. For HTTP the
 * port's appProtocol (KEP-3726 names) decides: HTTP/1.1 unless it says otherwise, h2c for
 * `kubernetes.io/h2c`, HTTP/1.1 with WebSocket upgrades for `kubernetes.io/ws`; `kubernetes.io/wss`
 * and `https` need TLS to the backend, so a BackendTLSPolicy for the port. GRPCRoutes always speak
 * h2c, TCP and TLS routes raw TCP, UDP routes datagrams. The port's own HTTP protocol keeps the plain
 * `namespace/service/port` name; any other gets a suffix, so both can be clusters at once.
 */
function backendProtocol(
  port: ServicePort,
  holder: BackendRefHolder,
  tls: UpstreamTlsOutcome | undefined,
): ProtocolChoice {
  const app = port.appProtocol;
  const own: IrBackendProtocol = app === 'kubernetes.io/h2c' ? 'h2c' : 'http1';
  const needsTls = app === 'kubernetes.io/wss' || app === 'https' || app === 'kubernetes.io/https';
  switch (holder.speaks) {
    case 'udp':
      return { ok: true, protocol: 'udp', suffix: 'udp', websocket: false };
    case 'tcp':
      return { ok: true, protocol: 'tcp', suffix: 'tcp', websocket: false };
    case 'h2c':
    case 'http': {
      if (needsTls && tls === undefined) {
        return {
          ok: false,
          problem: `appProtocol ${app} needs TLS to the backend; add a BackendTLSPolicy for the port`,
        };
      }
      const protocol: IrBackendProtocol = holder.speaks === 'h2c' ? 'h2c' : own;
      return {
        ok: true,
        protocol,
        suffix: protocol === own ? undefined : protocol,
        websocket: holder.speaks === 'http' && (app === 'kubernetes.io/ws' || app === 'kubernetes.io/wss'),
      };
    }
  }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
