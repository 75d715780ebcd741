import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/log.js';
import { type Standalone, startStandalone } from '../../src/standalone.js';

/**
 * Skein in standalone mode with a real Envoy, on a temp config directory the test writes to. Every
 * end-to-end test starts it the same way; `stop()` stops Envoy (by pid) and removes the directories.
 */
export interface TestSkein {
  readonly skein: Standalone;
  readonly dir: string;
  /** Writes (or replaces) a YAML file in the config directory; the watcher picks it up. */
  write(file: string, yaml: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestSkein(opts: {
  files: Readonly<Record<string, string>>;
  delta?: boolean;
  /** Control plane only (for proxyless gRPC tests). */
  envoy?: boolean;
}): Promise<TestSkein> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-test-config-'));
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-test-run-'));
  const write = (file: string, yaml: string): Promise<void> => writeFile(path.join(dir, file), yaml);
  for (const [file, yaml] of Object.entries(opts.files)) await write(file, yaml);
  let skein: Standalone;
  try {
    skein = await startStandalone({
      configDir: dir,
      logger: silentLogger,
      xds: { socketPath: path.join(runDir, 'xds.sock') },
      adminPort: 0,
      statusPort: 0,
      delta: opts.delta ?? true,
      envoy: opts.envoy ?? true,
      nodeId: `test-${path.basename(dir)}`,
      nodeCluster: 'skein-test',
      runDir,
      drainTimeoutMs: 0,
    });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
    throw e;
  }
  await skein.firstBuild;
  return {
    skein,
    dir,
    write,
    async stop() {
      await skein.stop();
      await rm(dir, { recursive: true, force: true });
      await rm(runDir, { recursive: true, force: true });
    },
  };
}

/** The usual GatewayClass (controller skein.io/gateway-controller), as YAML. */
export const GATEWAY_CLASS_YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
`;

/** A Service (port `port`, named `name`) and one EndpointSlice with the given loopback endpoints. */
export function serviceYaml(opts: {
  name: string;
  namespace?: string;
  port?: number;
  portName?: string;
  appProtocol?: string;
  protocol?: 'TCP' | 'UDP';
  endpoints: readonly { host: string; port: number }[];
}): string {
  const ns = opts.namespace ?? 'default';
  const portName = opts.portName ?? 'p';
  const protocol = opts.protocol ?? 'TCP';
  const byPort = new Map<number, string[]>();
  for (const e of opts.endpoints) byPort.set(e.port, [...(byPort.get(e.port) ?? []), e.host]);
  const slices = [...byPort].map(
    ([port, hosts], i) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${opts.name}-${i}
  namespace: ${ns}
  labels: { kubernetes.io/service-name: ${opts.name} }
addressType: IPv4
ports: [{ name: ${portName}, port: ${port}, protocol: ${protocol} }]
endpoints:
${hosts.map((h) => `  - { addresses: ["${h}"], conditions: { ready: true } }`).join('\n')}
`,
  );
  return `apiVersion: v1
kind: Service
metadata: { name: ${opts.name}, namespace: ${ns} }
spec:
  ports: [{ name: ${portName}, port: ${opts.port ?? 80}, protocol: ${protocol}${opts.appProtocol !== undefined ? `, appProtocol: ${opts.appProtocol}` : ''} }]
${slices.join('')}`;
}
