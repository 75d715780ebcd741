import type { IrRoute } from '../../model/ir.js';
import type { RouteActionFeature } from './httpFilter.js';

/**
 * Request mirroring (the Gateway API's RequestMirror filter): Envoy sends a copy of each request, or of
 * a share of them, to another cluster and ignores the answer. It appends `-shadow` to the copy's Host,
 * so the mirror can tell copies from real requests. A share is written per million, which holds the
 * fractions the Gateway API allows (`fraction: 1/3`) as closely as Envoy can; a whole percentage is
 * written per hundred, which reads better.
 */
export const mirrorFeature: RouteActionFeature = {
  name: 'mirror',
  routeAction: (r) => {
    const mirrors = r.mirrors ?? [];
    if (mirrors.length === 0) return {};
    return {
      requestMirrorPolicies: mirrors.map((m) => ({
        cluster: m.backend,
        ...(m.percent === undefined ? {} : { runtimeFraction: { defaultValue: fraction(m.percent) } }),
      })),
    };
  },
};

function fraction(percent: number): { numerator: number; denominator: string } {
  if (Number.isInteger(percent)) return { numerator: percent, denominator: 'HUNDRED' };
  return { numerator: Math.round(percent * 10_000), denominator: 'MILLION' };
}

/** The clusters a route mirrors to: the route configuration depends on them as on its backends. */
export function mirrorClusters(r: IrRoute): string[] {
  return (r.mirrors ?? []).map((m) => m.backend);
}
