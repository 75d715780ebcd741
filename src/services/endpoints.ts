import { isIP } from 'node:net';
import { compareBackends, type LbBackendIr, type LbBackendState } from '../model/serviceLb.js';
import type { EndpointSlice } from '../sources/objects.js';

/** The label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** A Service's EndpointSlices by `namespace/name` of the Service. */
export function slicesByService(slices: readonly EndpointSlice[]): Map<string, EndpointSlice[]> {
  const out = new Map<string, EndpointSlice[]>();
  for (const s of slices) {
    const service = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (service === undefined || service === '') continue;
    const key = `${s.metadata?.namespace ?? 'default'}/${service}`;
    const list = out.get(key) ?? [];
    list.push(s);
    out.set(key, list);
  }
  return out;
}

/**
 * How kube-proxy reads an endpoint's conditions: `ready` (absent means ready) takes new connections;
 * `serving` (absent means as ready) and `terminating` (absent means not) together mark an endpoint that is
 * shutting down but still serves, used only when a service has no ready endpoint. Anything else is out.
 */
export function endpointState(conditions: {
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}): LbBackendState | undefined {
  const ready = conditions.ready ?? true;
  const serving = conditions.serving ?? ready;
  const terminating = conditions.terminating ?? false;
  if (ready && !terminating) return 'active';
  if (serving && terminating) return 'terminating';
  return undefined;
}

const RANK: Record<LbBackendState, number> = { active: 2, terminating: 1 };

/**
 * The backends of one Service port for one address family: every endpoint of the Service's slices of that
 * family whose slice port has the Service port's name (the EndpointSlice controller names slice ports
 * after Service ports and resolves targetPort, by number or by name, per pod) and its protocol. Like
 * kube-proxy, only an endpoint's first address is used (the addresses are fungible). An address and port
 * listed twice keeps its best state. Sorted by compareBackends.
 */
export function portBackends(
  slices: readonly EndpointSlice[],
  portName: string,
  protocol: string,
  family: 4 | 6,
): LbBackendIr[] {
  const byKey = new Map<string, LbBackendIr>();
  const addressType = family === 4 ? 'IPv4' : 'IPv6';
  for (const slice of slices) {
    if (slice.addressType !== addressType) continue;
    for (const sp of slice.ports ?? []) {
      if ((sp.name ?? '') !== portName || (sp.protocol ?? 'TCP') !== protocol || sp.port === undefined)
        continue;
      for (const e of slice.endpoints ?? []) {
        const address = e.addresses[0];
        if (address === undefined || isIP(address) !== family) continue;
        const state = endpointState(e.conditions ?? {});
        if (state === undefined) continue;
        const key = `${address}|${sp.port}`;
        const seen = byKey.get(key);
        if (seen === undefined || RANK[state] > RANK[seen.state])
          byKey.set(key, { address, port: sp.port, state });
      }
    }
  }
  return [...byKey.values()].sort(compareBackends);
}
