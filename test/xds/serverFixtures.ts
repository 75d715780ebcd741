import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/log.js';
import { SnapshotCache } from '../../src/xds/cache.js';
import { ExtensionType, TypeUrl } from '../../src/xds/proto.js';
import type { ResourceEncoder, ResourceKey, ResourceSpec, XdsResource } from '../../src/xds/resource.js';
import { createXdsServer, type XdsServer, type XdsServerOptions } from '../../src/xds/server.js';
import { createSnapshot, type Snapshot } from '../../src/xds/snapshot.js';

/**
 * Small, real Envoy resources for the xDS server tests, with deps and children set the way the
 * translator sets them: a route configuration depends on its clusters and their endpoints, a listener on
 * its secrets; a listener's children are its route configuration, a cluster's its endpoints.
 */

const ads = { ads: {}, resourceApiVersion: 'V3' };

export function clusterSpec(name: string): ResourceSpec {
  return {
    typeUrl: TypeUrl.Cluster,
    name,
    message: {
      name,
      type: 'EDS',
      connectTimeout: { seconds: 1 },
      edsClusterConfig: { edsConfig: ads, serviceName: name },
    },
    deps: [],
    children: [{ typeUrl: TypeUrl.ClusterLoadAssignment, name }],
  };
}

export function endpointsSpec(name: string, port: number): ResourceSpec {
  return {
    typeUrl: TypeUrl.ClusterLoadAssignment,
    name,
    message: {
      clusterName: name,
      endpoints: [
        {
          lbEndpoints: [
            { endpoint: { address: { socketAddress: { address: '127.0.0.1', portValue: port } } } },
          ],
        },
      ],
    },
    deps: [],
    children: [],
  };
}

export function routeSpec(name: string, clusters: readonly string[]): ResourceSpec {
  return {
    typeUrl: TypeUrl.RouteConfiguration,
    name,
    message: {
      name,
      virtualHosts: [
        {
          name: 'all',
          domains: ['*'],
          routes: [
            {
              match: { prefix: '/' },
              route: {
                weightedClusters: { clusters: clusters.map((c) => ({ name: c, weight: { value: 1 } })) },
              },
            },
          ],
        },
      ],
    },
    deps: clusters.flatMap((c): ResourceKey[] => [
      { typeUrl: TypeUrl.Cluster, name: c },
      { typeUrl: TypeUrl.ClusterLoadAssignment, name: c },
    ]),
    children: [],
  };
}

export function listenerSpec(
  name: string,
  port: number,
  route: string,
  secrets: readonly string[] = [],
): ResourceSpec {
  const hcm = {
    '@type': ExtensionType.HttpConnectionManager,
    statPrefix: name,
    rds: { routeConfigName: route, configSource: ads },
    httpFilters: [{ name: 'envoy.filters.http.router', typedConfig: { '@type': ExtensionType.Router } }],
  };
  const tls =
    secrets.length === 0
      ? {}
      : {
          transportSocket: {
            name: 'envoy.transport_sockets.tls',
            typedConfig: {
              '@type': ExtensionType.DownstreamTlsContext,
              commonTlsContext: {
                tlsCertificateSdsSecretConfigs: secrets.map((s) => ({ name: s, sdsConfig: ads })),
              },
            },
          },
        };
  return {
    typeUrl: TypeUrl.Listener,
    name,
    message: {
      name,
      address: { socketAddress: { address: '127.0.0.1', portValue: port } },
      filterChains: [
        { filters: [{ name: 'envoy.filters.network.http_connection_manager', typedConfig: hcm }], ...tls },
      ],
    },
    deps: secrets.map((s) => ({ typeUrl: TypeUrl.Secret, name: s })),
    children: [{ typeUrl: TypeUrl.RouteConfiguration, name: route }],
  };
}

export function secretSpec(name: string, content: string): ResourceSpec {
  return {
    typeUrl: TypeUrl.Secret,
    name,
    message: {
      name,
      tlsCertificate: {
        certificateChain: {
          inlineString: `-----BEGIN CERTIFICATE-----\n${content}\n-----END CERTIFICATE-----\n`,
        },
        privateKey: { inlineString: `-----BEGIN PRIVATE KEY-----\n${content}\n-----END PRIVATE KEY-----\n` },
      },
    },
    deps: [],
    children: [],
  };
}

/** A small mesh: clusters (name → endpoint port), route configurations, listeners, secrets. */
export interface Mesh {
  readonly clusters: Readonly<Record<string, number>>;
  readonly routes: Readonly<Record<string, readonly string[]>>;
  readonly listeners: Readonly<Record<string, { port: number; route: string; secrets?: readonly string[] }>>;
  readonly secrets?: Readonly<Record<string, string>>;
}

export function meshResources(enc: ResourceEncoder, mesh: Mesh): XdsResource[] {
  const specs: ResourceSpec[] = [];
  for (const [c, port] of Object.entries(mesh.clusters)) specs.push(clusterSpec(c), endpointsSpec(c, port));
  for (const [r, cs] of Object.entries(mesh.routes)) specs.push(routeSpec(r, cs));
  for (const [l, s] of Object.entries(mesh.listeners))
    specs.push(listenerSpec(l, s.port, s.route, s.secrets));
  for (const [s, content] of Object.entries(mesh.secrets ?? {})) specs.push(secretSpec(s, content));
  return specs.map((s) => enc.encode(s));
}

export function meshSnapshot(enc: ResourceEncoder, mesh: Mesh): Snapshot {
  return createSnapshot(meshResources(enc, mesh));
}

/** Names and Any bytes of one type of a snapshot. */
export function snapshotBytes(s: Snapshot, typeUrl: TypeUrl): Map<string, Buffer> {
  return new Map([...(s.resources.get(typeUrl) ?? [])].map(([n, r]) => [n, Buffer.from(r.any)]));
}

export function sameBytes(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [n, x] of a) {
    const y = b.get(n);
    if (y === undefined || !y.equals(x)) return false;
  }
  return true;
}

export interface Harness {
  readonly cache: SnapshotCache;
  readonly server: XdsServer;
  readonly address: string;
  close(): Promise<void>;
}

/** A real server on a Unix socket in a fresh temp dir; `close()` stops it and removes the dir. */
export async function startServer(
  options: Partial<Omit<XdsServerOptions, 'cache'>> & { cache?: SnapshotCache } = {},
): Promise<Harness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'skein-xds-'));
  const cache = options.cache ?? new SnapshotCache();
  const server = createXdsServer({ logger: silentLogger, ...options, cache });
  const address = await server.listen(`unix://${path.join(dir, 'xds.sock')}`);
  return {
    cache,
    server,
    address,
    async close() {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
