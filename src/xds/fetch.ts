import type { TypeUrl } from './proto.js';
import type { Snapshot } from './snapshot.js';
import { versionOf } from './snapshot.js';
import { wildcardTypes } from './stream.js';
import { encodeSotwResponse } from './wire.js';

/**
 * The unary Fetch* methods (LDS/RDS/CDS/EDS/SDS): one DiscoveryResponse with the requested resources of
 * the snapshot as it is now. No nonce (there is no stream to ACK on) and no ordering across types: a
 * polling client gets each type when it asks for it.
 */
export function fetchResponse(
  snapshot: Snapshot,
  typeUrl: TypeUrl,
  resourceNames: readonly string[],
  controlPlaneId: string | undefined,
): Buffer {
  const byName = snapshot.resources.get(typeUrl) ?? new Map();
  const wildcard = resourceNames.includes('*') || (resourceNames.length === 0 && wildcardTypes.has(typeUrl));
  const names = wildcard ? [...byName.keys()] : [...new Set(resourceNames)];
  const resources = names
    .sort()
    .map((n) => byName.get(n))
    .filter((r) => r !== undefined);
  return encodeSotwResponse(
    {
      versionInfo: versionOf(resources),
      typeUrl,
      nonce: '',
      ...(controlPlaneId === undefined ? {} : { controlPlane: controlPlaneId }),
    },
    resources.map((r) => r.any),
  );
}
