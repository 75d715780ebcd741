import { createHash } from 'node:crypto';
import type {
  BackendTLSPolicy,
  ConfigMap,
  Diagnostic,
  EndpointSlice,
  Gateway,
  GatewayClass,
  GRPCRoute,
  HTTPRoute,
  Ingress,
  IngressClass,
  KnownKind,
  Namespace,
  NetworkPolicy,
  ObjectSet,
  Pod,
  ReferenceGrant,
  Secret,
  Service,
  TCPRoute,
  TLSRoute,
  UDPRoute,
} from '../objects.js';
import { type ParsedFile, type ParsedObject, parseFile } from './parseFile.js';
import { SourceCode } from './sourceCodes.js';

interface FileEntry {
  /** Content hash of the version last parsed; undefined after a read failure. */
  readonly hash: string | undefined;
  /** The objects this file contributes now: the last parse, or the last good one after a syntax error. */
  readonly objects: readonly ParsedObject[];
  readonly diagnostics: readonly Diagnostic[];
}

/** What one `update` did: whether the file's contribution changed, and the parse if one happened. */
export interface FileUpdate {
  readonly changed: boolean;
  readonly parsed: ParsedFile | undefined;
}

/**
 * The per-file state of a config directory: path → (content hash, objects, diagnostics). No I/O: the
 * caller reads files and hands their content in.
 *
 * A file whose content hash has not changed is not parsed again, so its objects keep their identity (the
 * translators memoise on identity). When a changed file is parsed, each object whose document did not
 * change keeps its previous identity too. A file with a YAML syntax error keeps contributing the objects
 * of its last good version, so one bad save never takes routes down.
 */
export class FileCache {
  readonly #files = new Map<string, FileEntry>();

  /** Paths (relative, `/`-separated) of every file the cache holds. */
  paths(): string[] {
    return [...this.#files.keys()].sort();
  }

  update(file: string, content: string): FileUpdate {
    const hash = createHash('sha256').update(content).digest('hex');
    const previous = this.#files.get(file);
    if (previous?.hash === hash) return { changed: false, parsed: undefined };

    const parsed = parseFile(file, content);
    if (parsed.syntaxError) {
      const kept = previous?.objects ?? [];
      const note: Diagnostic[] =
        kept.length > 0
          ? [
              {
                code: SourceCode.YamlSyntax,
                severity: 'error',
                origin: file,
                message: `keeping the ${kept.length} object(s) of the last version of ${file} that parsed`,
              },
            ]
          : [];
      this.#files.set(file, { hash, objects: kept, diagnostics: [...parsed.diagnostics, ...note] });
      return { changed: true, parsed };
    }
    this.#files.set(file, {
      hash,
      objects: reuseUnchanged(previous?.objects ?? [], parsed.objects),
      diagnostics: parsed.diagnostics,
    });
    return { changed: true, parsed };
  }

  /** The file exists but could not be read: report it, and keep its last good objects. */
  readFailed(file: string, message: string): void {
    const previous = this.#files.get(file);
    this.#files.set(file, {
      hash: undefined,
      objects: previous?.objects ?? [],
      diagnostics: [{ code: SourceCode.ReadFailed, severity: 'error', origin: file, message }],
    });
  }

  /** The file is gone: its objects go with it. Returns whether the cache held it. */
  remove(file: string): boolean {
    return this.#files.delete(file);
  }

  /**
   * Everything the directory declares now. Objects declared twice are kept once (the first by file path
   * and document order) and the repeat is reported, as the API server would hold only one.
   */
  snapshot(): { objects: ObjectSet; diagnostics: Diagnostic[] } {
    const diagnostics: Diagnostic[] = [];
    const byKind: Record<KnownKind, ParsedObject[]> = {
      GatewayClass: [],
      Gateway: [],
      HTTPRoute: [],
      Service: [],
      EndpointSlice: [],
      GRPCRoute: [],
      ReferenceGrant: [],
      TLSRoute: [],
      TCPRoute: [],
      UDPRoute: [],
      BackendTLSPolicy: [],
      Secret: [],
      Namespace: [],
      Ingress: [],
      IngressClass: [],
      ConfigMap: [],
      NetworkPolicy: [],
      Pod: [],
    };
    const origins = new Map<string, string>();
    for (const file of this.paths()) {
      const entry = this.#files.get(file);
      if (entry === undefined) continue;
      diagnostics.push(...entry.diagnostics);
      for (const o of entry.objects) {
        const first = origins.get(o.key);
        if (first !== undefined) {
          diagnostics.push({
            code: SourceCode.DuplicateObject,
            severity: 'error',
            origin: o.origin,
            object: o.key,
            message: `is also declared in ${first}; that one is used and this one is ignored`,
          });
          continue;
        }
        origins.set(o.key, o.origin);
        byKind[o.kind].push(o);
      }
    }
    const sorted = <T>(list: ParsedObject[]): T[] =>
      list.sort((a, b) => compareObjects(a, b)).map((o) => o.object as unknown as T);
    return {
      objects: {
        gatewayClasses: sorted<GatewayClass>(byKind.GatewayClass),
        gateways: sorted<Gateway>(byKind.Gateway),
        httpRoutes: sorted<HTTPRoute>(byKind.HTTPRoute),
        services: sorted<Service>(byKind.Service),
        endpointSlices: sorted<EndpointSlice>(byKind.EndpointSlice),
        grpcRoutes: sorted<GRPCRoute>(byKind.GRPCRoute),
        referenceGrants: sorted<ReferenceGrant>(byKind.ReferenceGrant),
        tlsRoutes: sorted<TLSRoute>(byKind.TLSRoute),
        tcpRoutes: sorted<TCPRoute>(byKind.TCPRoute),
        udpRoutes: sorted<UDPRoute>(byKind.UDPRoute),
        backendTLSPolicies: sorted<BackendTLSPolicy>(byKind.BackendTLSPolicy),
        secrets: sorted<Secret>(byKind.Secret),
        namespaces: sorted<Namespace>(byKind.Namespace),
        ingresses: sorted<Ingress>(byKind.Ingress),
        ingressClasses: sorted<IngressClass>(byKind.IngressClass),
        configMaps: sorted<ConfigMap>(byKind.ConfigMap),
        networkPolicies: sorted<NetworkPolicy>(byKind.NetworkPolicy),
        pods: sorted<Pod>(byKind.Pod),
        origins,
      },
      diagnostics,
    };
  }
}

/** Namespace, then name: the order of every list in an ObjectSet. */
function compareObjects(a: ParsedObject, b: ParsedObject): number {
  const an = a.object.metadata?.namespace ?? '';
  const bn = b.object.metadata?.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  const aName = a.object.metadata?.name ?? '';
  const bName = b.object.metadata?.name ?? '';
  return aName < bName ? -1 : aName > bName ? 1 : 0;
}

/**
 * Objects whose document did not change between two versions of a file keep the previous object, so an
 * edit of one route in a file of ten re-translates one route.
 */
function reuseUnchanged(previous: readonly ParsedObject[], next: readonly ParsedObject[]): ParsedObject[] {
  if (previous.length === 0) return [...next];
  const before = new Map<string, { json: string; parsed: ParsedObject }>();
  for (const p of previous) before.set(p.key, { json: JSON.stringify(p.object), parsed: p });
  return next.map((n) => {
    const old = before.get(n.key);
    if (old === undefined || old.json !== JSON.stringify(n.object)) return n;
    return old.parsed.origin === n.origin ? old.parsed : { ...n, object: old.parsed.object };
  });
}
