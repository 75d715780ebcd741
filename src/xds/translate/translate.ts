import type { Ir, IrBackend, IrListener, IrRoute, IrSecret, IrVirtualHost } from '../../model/ir.js';
import { allTypeUrls, type TypeUrl } from '../proto.js';
import type { ResourceSpec } from '../resource.js';
import { translateBackend, unavailableBackend } from './cluster.js';
import type { XdsFlavor } from './flavor.js';
import { type GrpcHost, type GrpcHostOf, grpcHost, translateGrpcListener } from './grpc.js';
import { translateListener } from './listener.js';
import { type TranslatedRoute, translateRoute, UNAVAILABLE_CLUSTER } from './route.js';
import { compareStrings } from './routeConfiguration.js';
import { translateSecret } from './secret.js';
import { TranslateError, TranslateErrorCode } from './translateError.js';

export type { XdsFlavor } from './flavor.js';

export interface TranslateOptions {
  /** Which client the resources are for: a node-wide Envoy, or proxyless gRPC clients. */
  readonly flavor: XdsFlavor;
}

export interface IrTranslator {
  /**
   * The Envoy v3 resources for `ir`, sorted by type (LDS, RDS, CDS, EDS, SDS) then name. Pure; the IR
   * should pass validate() first.
   */
  translate(ir: Ir, options: TranslateOptions): ResourceSpec[];
}

/**
 * A translator that remembers, per IR object, what it translated to. IR builders share unchanged
 * objects between builds (structural sharing), so a build in which one route changed re-translates
 * only its listener: every other listener, backend and secret returns the very same ResourceSpec
 * objects, and the encoder finds their bytes by identity. Within the re-translated listener, routes are
 * memoised too (per IR route and flavour), so its route configuration holds the same route message
 * objects as before but for the changed one, and the encoder re-encodes only that one. Entries live in
 * WeakMaps and go when the IR objects do.
 *
 * What each entry depends on is the IR object alone: routes refer to clusters and listeners to secrets
 * by name only, so a changed backend or secret never invalidates a listener.
 */
export function createIrTranslator(): IrTranslator {
  const envoyListeners = new WeakMap<IrListener, readonly ResourceSpec[]>();
  const grpcListeners = new WeakMap<IrListener, readonly GrpcHost[]>();
  const grpcHosts = new WeakMap<IrVirtualHost, Map<string, GrpcHost>>();
  const backends = new WeakMap<IrBackend, readonly ResourceSpec[]>();
  const grpcTlsBackends = new WeakMap<IrBackend, readonly ResourceSpec[]>();
  const secrets = new WeakMap<IrSecret, ResourceSpec>();
  const envoyRoutes = new WeakMap<IrRoute, TranslatedRoute>();
  const grpcRoutes = new WeakMap<IrRoute, TranslatedRoute>();
  const memo = <K extends object, V>(cache: WeakMap<K, V>, key: K, make: (k: K) => V): V => {
    let v = cache.get(key);
    if (v === undefined) {
      v = make(key);
      cache.set(key, v);
    }
    return v;
  };

  return {
    translate(ir, options) {
      checkOptions(options);
      const out: ResourceSpec[] = [];
      // Listeners and their route configurations: the part that differs between flavours.
      if (options.flavor === 'envoy') {
        const routeOf = (r: IrRoute) => memo(envoyRoutes, r, (k) => translateRoute(k, 'envoy'));
        for (const l of ir.listeners)
          out.push(...memo(envoyListeners, l, (k) => translateListener(k, routeOf)));
      } else {
        const routeOf = (r: IrRoute) => memo(grpcRoutes, r, (k) => translateRoute(k, 'grpc'));
        // Per virtual host too: an IR listener is a new object whenever one of its routes changes, but
        // its other virtual hosts are the same objects, and so are their hostnames' resources.
        const hostOf: GrpcHostOf = (vh, hostname, filters, filtersKey) => {
          let byName = grpcHosts.get(vh);
          if (byName === undefined) {
            byName = new Map();
            grpcHosts.set(vh, byName);
          }
          const key = `${hostname}\0${filtersKey}`;
          let host = byName.get(key);
          if (host === undefined) {
            host = grpcHost(hostname, vh, filters, routeOf);
            byName.set(key, host);
          }
          return host;
        };
        const hostsOf = (l: IrListener) =>
          memo(grpcListeners, l, (k) => translateGrpcListener(k, routeOf, hostOf));
        // A transparent listener is the node proxy's socket; proxyless clients have no use for it.
        out.push(
          ...grpcResources(
            ir.listeners.filter((l) => l.transparent !== true),
            hostsOf,
          ),
        );
      }
      // Clusters and endpoints: the same specs for both flavours, so node groups of either kind share bytes.
      // (Except TLS backends, which proxyless clients cannot verify: see translateBackend.)
      for (const b of ir.backends) {
        // The original-destination cluster serves only Envoy's transparent listener.
        if (options.flavor === 'grpc' && b.originalDestination !== undefined) continue;
        if (options.flavor === 'grpc' && b.tls !== undefined) {
          out.push(...memo(grpcTlsBackends, b, (k) => translateBackend(k, 'grpc')));
        } else {
          out.push(...memo(backends, b, (k) => translateBackend(k)));
        }
      }
      if (options.flavor === 'grpc' && out.some(usesUnavailableCluster)) out.push(...UNAVAILABLE_RESOURCES);
      // Secrets only matter to Envoy: proxyless clients get certificates from their own providers.
      if (options.flavor === 'envoy') for (const s of ir.secrets) out.push(memo(secrets, s, translateSecret));
      return sortAndCheck(out);
    },
  };
}

/** Translates `ir` once, without memoisation across calls. */
export function translateIr(ir: Ir, options: TranslateOptions): ResourceSpec[] {
  return createIrTranslator().translate(ir, options);
}

/**
 * A hostname served by several IR listeners (several ports) maps to one gRPC Listener; the first IR
 * listener by name wins, so the choice does not depend on the order of the input.
 */
function grpcResources(
  listeners: readonly IrListener[],
  hostsOf: (l: IrListener) => readonly GrpcHost[],
): ResourceSpec[] {
  const out: ResourceSpec[] = [];
  const taken = new Set<string>();
  for (const l of [...listeners].sort((a, b) => compareStrings(a.name, b.name))) {
    for (const h of hostsOf(l)) {
      if (taken.has(h.hostname)) continue;
      taken.add(h.hostname);
      out.push(h.listener, h.routeConfiguration);
    }
  }
  return out;
}

const UNAVAILABLE_RESOURCES: readonly ResourceSpec[] = translateBackend(
  unavailableBackend(UNAVAILABLE_CLUSTER),
);

function usesUnavailableCluster(r: ResourceSpec): boolean {
  return r.deps.some((d) => d.name === UNAVAILABLE_CLUSTER);
}

const FLAVORS: readonly string[] = ['envoy', 'grpc'] satisfies readonly XdsFlavor[];

function checkOptions(options: TranslateOptions): void {
  if (!FLAVORS.includes(options.flavor)) {
    throw new TranslateError(
      TranslateErrorCode.InvalidOptions,
      `Cannot translate IR as flavor "${String(options.flavor)}": expected one of ${FLAVORS.join(', ')}`,
    );
  }
}

const typeOrder = new Map<TypeUrl, number>(allTypeUrls.map((t, i) => [t, i]));

function sortAndCheck(specs: ResourceSpec[]): ResourceSpec[] {
  specs.sort(
    (a, b) =>
      (typeOrder.get(a.typeUrl) ?? 0) - (typeOrder.get(b.typeUrl) ?? 0) || compareStrings(a.name, b.name),
  );
  for (let i = 1; i < specs.length; i++) {
    const a = specs[i - 1];
    const b = specs[i];
    if (a !== undefined && b !== undefined && a.typeUrl === b.typeUrl && a.name === b.name) {
      throw new TranslateError(
        TranslateErrorCode.DuplicateResource,
        `two ${b.typeUrl} resources are named "${b.name}"`,
      );
    }
  }
  return specs;
}
