import type { IrBackend, IrBackendProtocol, IrEndpoint } from '../model/ir.js';
import { backendName } from '../model/names.js';
import type { EndpointSlice, Service } from '../sources/objects.js';
import { RouteReason } from './conditions.js';

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

/** A backendRef resolved: the IR backend it names, or why it names none (a ResolvedRefs reason). */
export type BackendResolution =
  | { readonly ok: true; readonly backend: string }
  | { readonly ok: false; readonly reason: string; readonly message: string };

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

  constructor(services: readonly Service[], slices: readonly EndpointSlice[], cache: BackendCache) {
    this.#cache = cache;
    this.#used = cache.resolutionsFor(services);
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
   * Stands for how backendRefs resolve: the same object from build to build while the Services are
   * the same objects (EndpointSlices play no part in resolving). A route whose backendRefs were
   * resolved under the same `resolutions` resolves the same way, and needs no `resolve` calls again.
   */
  get resolutions(): object {
    return this.#used;
  }

  /**
   * Resolves one backendRef of a route in `routeNamespace`. Only core Services in the route's own
   * namespace resolve: ReferenceGrant is not supported yet, so a cross-namespace reference is never
   * permitted.
   */
  resolve(ref: BackendRefSpec, routeNamespace: string): BackendResolution {
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
    if (namespace !== routeNamespace) {
      return {
        ok: false,
        reason: RouteReason.RefNotPermitted,
        message: `Service ${what} is in another namespace, and cross-namespace references need a ReferenceGrant, which Skein does not support yet`,
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
    const port = service.spec?.ports?.find((p) => p.port === ref.port);
    if (port === undefined) {
      return {
        ok: false,
        reason: RouteReason.BackendNotFound,
        message: `Service ${what} has no port ${ref.port}`,
      };
    }
    const protocol = portProtocol(port);
    if (typeof protocol === 'string' && !isBackendProtocol(protocol)) {
      return {
        ok: false,
        reason: RouteReason.UnsupportedProtocol,
        message: `Service ${what} port ${ref.port}: ${protocol}`,
      };
    }
    const name = backendName(namespace, ref.name, ref.port);
    this.#used.set(name, { service, port });
    return { ok: true, backend: name };
  }

  /** The IR backend of a name `resolve` returned during this build. */
  backend(name: string): IrBackend | undefined {
    const used = this.#used.get(name);
    if (used === undefined) return undefined;
    const { service, port } = used;
    const key = `${service.metadata?.namespace ?? 'default'}/${service.metadata?.name ?? ''}`;
    return this.#cache.get(name, service, port, this.#slices.get(key) ?? []);
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
  #resolved = new Map<string, Resolved>();

  /**
   * The resolutions of the last build if `services` are the same objects as then (names resolved
   * then still resolve to the same Service and port), else a new, empty set.
   */
  resolutionsFor(services: readonly Service[]): Map<string, Resolved> {
    if (!sameItems(this.#services, services)) {
      this.#services = [...services];
      this.#resolved = new Map();
    }
    return this.#resolved;
  }

  get(name: string, service: Service, port: ServicePort, slices: readonly EndpointSlice[]): IrBackend {
    const old = this.#next.get(name) ?? this.#entries.get(name);
    if (old !== undefined && old.service === service && old.port === port && sameItems(old.slices, slices)) {
      this.#next.set(name, old);
      return old.backend;
    }
    const backend = buildBackend(name, port, slices);
    this.#next.set(name, { service, port, slices: [...slices], backend });
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
}

interface CacheEntry {
  readonly service: Service;
  readonly port: ServicePort;
  readonly slices: readonly EndpointSlice[];
  readonly backend: IrBackend;
}

/**
 * One Service port as an IR backend. Its endpoints come from the Service's EndpointSlices: every slice
 * port whose name equals the Service port's name (both may be empty), times every address of every
 * endpoint; an endpoint is ready unless its `ready` condition is false. FQDN slices are skipped (Envoy
 * needs IP addresses here). An address listed twice is ready if any listing is.
 */
export function buildBackend(name: string, port: ServicePort, slices: readonly EndpointSlice[]): IrBackend {
  const endpoints = new Map<string, IrEndpoint>();
  const portName = port.name ?? '';
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const sp of slice.ports ?? []) {
      if ((sp.name ?? '') !== portName || sp.port === undefined) continue;
      if ((sp.protocol ?? 'TCP') !== 'TCP') continue;
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
  const protocol = portProtocol(port);
  return { name, protocol: isBackendProtocol(protocol) ? protocol : 'http1', endpoints: sorted };
}

/**
 * The protocol Envoy speaks to a Service port, from its appProtocol (KEP-3726 names), or why it cannot.
 * HTTP/1.1 is assumed when nothing says otherwise; h2c when the port says `kubernetes.io/h2c`.
 */
function portProtocol(port: ServicePort): IrBackendProtocol | string {
  if ((port.protocol ?? 'TCP') !== 'TCP') return `protocol ${port.protocol} cannot carry HTTP`;
  const app = port.appProtocol;
  if (app === 'kubernetes.io/h2c') return 'h2c';
  if (app === 'kubernetes.io/wss' || app === 'https' || app === 'kubernetes.io/https') {
    return `appProtocol ${app} needs TLS to the backend, which Skein does not support yet`;
  }
  return 'http1';
}

function isBackendProtocol(p: string): p is IrBackendProtocol {
  return p === 'http1' || p === 'h2c';
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
