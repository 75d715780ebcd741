import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { type Standalone, startStandalone } from '../../src/standalone.js';
import { waitFor } from '../helpers/net.js';

/**
 * An independent xDS client: proxyless gRPC (@grpc/grpc-js-xds) resolves `xds:///echo.skein.test`
 * against Skein's xDS server (it gets the api_listener flavour of the config) and calls a real gRPC
 * backend chosen by the HTTPRoute. No Envoy is involved.
 */

interface SayReply {
  message: string;
  backend: string;
}
type EchoClient = grpc.Client & {
  say(
    req: { message: string },
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: SayReply) => void,
  ): void;
};

const packageDef = protoLoader.loadSync(path.join(import.meta.dirname, '../fixtures/echo.proto'));
const proto = grpc.loadPackageDefinition(packageDef) as unknown as {
  skein: { test: { Echo: grpc.ServiceClientConstructor } };
};
const EchoService = proto.skein.test.Echo;

async function startGrpcBackend(name: string): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(EchoService.service, {
    say: (call: grpc.ServerUnaryCall<{ message: string }, SayReply>, cb: grpc.sendUnaryData<SayReply>) => {
      cb(null, { message: call.request.message, backend: name });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return { port, server };
}

function configYaml(backends: { name: string; port: number }[], weights: Record<string, number>): string {
  const services = backends
    .map(
      (b) => `
apiVersion: v1
kind: Service
metadata: { name: ${b.name}, namespace: grpc }
spec:
  ports: [{ name: grpc, port: 50051, appProtocol: kubernetes.io/h2c }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${b.name}-a, namespace: grpc, labels: { kubernetes.io/service-name: ${b.name} } }
addressType: IPv4
ports: [{ name: grpc, port: ${b.port} }]
endpoints: [{ addresses: ["127.0.0.1"] }]
`,
    )
    .join('---\n');
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: mesh, namespace: grpc }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: 127.0.0.1 }]
  listeners: [{ name: http, protocol: HTTP, port: 18080 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo, namespace: grpc }
spec:
  parentRefs: [{ name: mesh }]
  hostnames: [echo.skein.test]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /skein.test.Echo } }]
      backendRefs:
${backends.map((b) => `        - { name: ${b.name}, port: 50051, weight: ${weights[b.name] ?? 1} }`).join('\n')}
---
${services}`;
}

describe('proxyless gRPC (@grpc/grpc-js-xds) against the Skein xDS server', () => {
  let dir: string;
  let runDir: string;
  let skein: Standalone;
  let backends: { name: string; port: number; server: grpc.Server }[];
  let client: EchoClient;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'skein-grpc-config-'));
    runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-grpc-run-'));
    backends = [
      { name: 'alpha', ...(await startGrpcBackend('alpha')) },
      { name: 'beta', ...(await startGrpcBackend('beta')) },
    ];
    await writeFile(path.join(dir, 'config.yaml'), configYaml(backends, { alpha: 1, beta: 0 }));
    const socketPath = path.join(runDir, 'xds.sock');
    skein = await startStandalone({
      configDir: dir,
      logger: silentLogger,
      xds: { socketPath },
      adminPort: 0,
      statusPort: 0,
      delta: false,
      envoy: false,
      nodeId: 'unused',
      nodeCluster: 'unused',
      runDir,
    });
    await skein.firstBuild;
    // grpc-js-xds reads its bootstrap from the environment when the first xds: channel is made.
    process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify({
      xds_servers: [
        {
          server_uri: `unix://${socketPath}`,
          channel_creds: [{ type: 'insecure' }],
          server_features: ['xds_v3'],
        },
      ],
      node: { id: 'grpc-e2e-client', cluster: 'grpc-e2e', locality: {} },
    });
    const xds = await import('@grpc/grpc-js-xds');
    xds.register();
    client = new EchoService(
      'xds:///echo.skein.test',
      grpc.credentials.createInsecure(),
    ) as unknown as EchoClient;
  });

  afterAll(async () => {
    client?.close();
    for (const b of backends ?? []) b.server.forceShutdown();
    await skein?.stop();
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  const say = (message: string): Promise<SayReply> =>
    new Promise((resolve, reject) => {
      client.say({ message }, { deadline: Date.now() + 5000 }, (err, res) =>
        err || res === undefined ? reject(err) : resolve(res),
      );
    });

  it('resolves the name through xDS and calls the backend the route picks', async () => {
    const reply = await waitFor('a first successful call', () => say('hello'), 20_000, 100);
    expect(reply).toEqual({ message: 'hello', backend: 'alpha' });
    const status = await skein.statusReport();
    expect(status.xds.streams.some((s) => s.group === 'grpc')).toBe(true);
  });

  it('follows a route change pushed over xDS', async () => {
    await writeFile(path.join(dir, 'config.yaml'), configYaml(backends, { alpha: 0, beta: 1 }));
    const reply = await waitFor(
      'calls to move to beta',
      async () => {
        const r = await say('again');
        return r.backend === 'beta' ? r : undefined;
      },
      10_000,
      50,
    );
    expect(reply.message).toBe('again');
  });
});
