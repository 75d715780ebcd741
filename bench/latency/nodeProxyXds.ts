/**
 * The node Envoy of the L7 path, programmed the way `skein agent` programs it: the policy IR's redirects
 * become the node proxy's Envoy IR (proxyIr: a transparent listener and the original-destination
 * backend), handed to Skein's ControlPlane as the agent hands it (`apply(objects, [], { proxy })`), whose
 * snapshot Skein's xDS server serves over delta ADS on a Unix socket to an Envoy started from Skein's
 * bootstrap.
 *
 * Changes for the bench, to what Envoy is given, each said in the results: the connection manager's
 * access log is left out (no path of the bench logs requests); admin listens on a Unix socket (the
 * Envoy is in the node's network namespace, the bench is not); and while Skein's original-destination
 * cluster speaks only HTTP/1.1 upstream (a gap: a redirected gRPC call fails with a protocol error), it
 * is given the downstream's protocol, so that the gRPC rows measure a working path. That patch applies
 * only to a cluster without protocol options, so it stops applying once the translator sets them.
 */

import path from 'node:path';
import { ControlPlane } from '../../src/controlPlane.js';
import { renderBootstrap } from '../../src/envoy/bootstrap.js';
import { silentLogger } from '../../src/log.js';
import type { PolicyIr } from '../../src/model/policy.js';
import { proxyIr } from '../../src/model/proxyIr.js';
import { validate } from '../../src/model/validate.js';
import { emptyObjectSet } from '../../src/sources/objects.js';
import { ExtensionType } from '../../src/xds/proto.js';
import type { ResourceSpec } from '../../src/xds/resource.js';
import { createXdsServer, type XdsServer } from '../../src/xds/server.js';
import { createIrTranslator, type IrTranslator } from '../../src/xds/translate/translate.js';

export interface NodeProxyXds {
  readonly xds: XdsServer;
  /** What the bench changed in Skein's resources (empty if nothing). */
  readonly patches: readonly string[];
  /** Skein's bootstrap for the node Envoy (admin on `adminSocket`). */
  readonly bootstrap: Record<string, unknown>;
  /** The names of the listeners served (for readiness). */
  readonly listeners: readonly string[];
  close(): Promise<void>;
}

type Mutable = Record<string, unknown>;

/** The specs with every HTTP connection manager's access log left out (a copy; the specs are not changed). */
export function withoutAccessLogs(specs: readonly ResourceSpec[]): ResourceSpec[] {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (typeof v !== 'object' || v === null) return v;
    const o = v as Mutable;
    const out: Mutable = {};
    for (const [k, x] of Object.entries(o)) {
      if (k === 'accessLog' && o['@type'] === ExtensionType.HttpConnectionManager) continue;
      out[k] = strip(x);
    }
    return out;
  };
  return specs.map((s) => ({ ...s, message: strip(s.message) as ResourceSpec['message'] }));
}

export async function serveNodeProxy(o: {
  policy: PolicyIr;
  upstreamMark: number;
  dir: string;
  adminSocket: string;
}): Promise<NodeProxyXds> {
  const ir = proxyIr(o.policy, { upstreamMark: o.upstreamMark });
  const problems = validate(ir);
  if (problems.length > 0)
    throw new Error(`the node proxy IR does not validate: ${JSON.stringify(problems[0])}`);
  if (ir.listeners.length === 0) throw new Error('the policy IR redirects nothing: no node proxy listener');
  // Skein's translator, with the bench's changes applied to what it returns.
  const translator = createIrTranslator();
  const envoyTranslator: IrTranslator = {
    translate(input, options) {
      return withoutAccessLogs(translator.translate(input, options));
    },
  };
  const cp = new ControlPlane({ logger: silentLogger, envoyTranslator });
  const report = cp.apply(emptyObjectSet, [], { proxy: ir });
  if (!report.published)
    throw new Error(`the node proxy's config was not published: ${report.errors.join('; ')}`);
  const patches = ['access log of the HTTP connection manager left out', 'admin on a Unix socket'];
  const xds = createXdsServer({ cache: cp.cache, logger: silentLogger });
  const socketPath = path.join(o.dir, 'xds.sock');
  await xds.listen(`unix://${socketPath}`);
  const bootstrap = renderBootstrap({
    nodeId: 'bench-node-proxy',
    nodeCluster: 'skein-bench',
    xds: { socketPath },
    adminPort: 0,
    delta: true,
  });
  bootstrap['admin'] = { ...(bootstrap['admin'] as Mutable), address: { pipe: { path: o.adminSocket } } };
  return { xds, patches, bootstrap, listeners: ir.listeners.map((l) => l.name), close: () => xds.close() };
}
