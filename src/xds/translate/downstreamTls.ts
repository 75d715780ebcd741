import type { IrCertificateSet } from '../../model/ir.js';
import { ExtensionType, type ProtoObject } from '../proto.js';
import { adsConfigSource } from './protoValues.js';

/**
 * What listeners that take TLS share: the TLS inspector, the downstream TLS context over SDS, and how
 * IR hostnames become filter chain `server_names`.
 */

/**
 * The listener filter that reads the ClientHello's SNI (and ALPN) before a filter chain is chosen, so
 * that `filter_chain_match.server_names` can match. Only listeners that match on server names get it.
 */
export const TLS_INSPECTOR: ProtoObject = {
  name: 'envoy.filters.listener.tls_inspector',
  typedConfig: { '@type': ExtensionType.TlsInspector },
};

/**
 * A filter chain's TLS: the certificates (IR secret names), fetched over SDS on the same ADS stream.
 * With several certificates in one context Envoy picks by key type and by the names in each
 * certificate. `alpn`: the protocols offered (HTTPS: `h2`, `http/1.1`; TLS terminate: none).
 */
export function downstreamTls(secretNames: readonly string[], alpn: readonly string[] = []): ProtoObject {
  return {
    name: 'envoy.transport_sockets.tls',
    typedConfig: {
      '@type': ExtensionType.DownstreamTlsContext,
      commonTlsContext: {
        tlsCertificateSdsSecretConfigs: secretNames.map((name) => ({ name, sdsConfig: adsConfigSource })),
        ...(alpn.length > 0 ? { alpnProtocols: [...alpn] } : {}),
      },
    },
  };
}

/**
 * IR hostnames as Envoy `server_names`: exact names and `*.` wildcards (which Envoy, like the Gateway
 * API, matches over one or more labels) are kept, lower-cased (SNI is case-insensitive and Envoy
 * compares it lower-cased); `*` (any) means no server name match at all, which an empty list says.
 */
export function serverNames(hostnames: readonly string[]): string[] {
  if (hostnames.includes('*')) return [];
  return [...new Set(hostnames.map((h) => h.toLowerCase()))].sort();
}

/**
 * The certificate set a server name gets: the set with the most specific hostname that covers it (an
 * exact name, then the longest wildcard), else the set without hostnames, else none.
 */
export function certificateSetFor(
  sets: readonly IrCertificateSet[],
  name: string,
): IrCertificateSet | undefined {
  let best: IrCertificateSet | undefined;
  let bestRank = -1;
  for (const set of sets) {
    if (set.hostnames.length === 0) {
      if (bestRank < 0) {
        best = set;
        bestRank = 0;
      }
      continue;
    }
    for (const h of set.hostnames) {
      const rank = coverRank(h.toLowerCase(), name);
      if (rank > bestRank) {
        best = set;
        bestRank = rank;
      }
    }
  }
  return best;
}

/** -1: does not cover; else higher for more specific: exact beats any wildcard, longer wildcards win. */
function coverRank(pattern: string, name: string): number {
  if (pattern === name) return 100_000;
  if (pattern === '*') return 1;
  if (!pattern.startsWith('*.')) return -1;
  const suffix = pattern.slice(1); // ".example.com"
  const host = name.startsWith('*.') ? name.slice(2) : name;
  return host.length > suffix.length && host.endsWith(suffix) ? 1 + pattern.length : -1;
}
