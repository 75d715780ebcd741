import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { it } from 'vitest';
import { startEchoServer } from '../../src/echo/echoServer.js';
import { getConfigDump } from '../../src/envoy/admin.js';
import { startStandalone } from '../../src/standalone.js';
import { randomLoopback, waitFor } from '../helpers/net.js';

const yaml = (address: string, b: number, g: number, bp: number, gp: number, extra = '') => `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - { name: http, protocol: HTTP, port: 8080 }
---
apiVersion: v1
kind: Service
metadata: { name: blue, namespace: default }
spec:
  ports: [{ name: http, port: 80, targetPort: ${bp} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: blue-1, namespace: default, labels: { kubernetes.io/service-name: blue } }
addressType: IPv4
ports: [{ name: http, port: ${bp} }]
endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }]
---
apiVersion: v1
kind: Service
metadata: { name: green, namespace: default }
spec:
  ports: [{ name: http, port: 80, targetPort: ${gp} }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: green-1, namespace: default, labels: { kubernetes.io/service-name: green } }
addressType: IPv4
ports: [{ name: http, port: ${gp} }]
endpoints: [{ addresses: ["127.0.0.1"], conditions: { ready: true } }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: / } }]
      backendRefs:
        - { name: blue, port: 80, weight: ${b} }
        - { name: green, port: 80, weight: ${g} }
${extra}`;

it('scratch', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-scr-'));
  const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-scr-run-'));
  const blue = await startEchoServer({ name: 'blue', host: '127.0.0.1' });
  const green = await startEchoServer({ name: 'green', host: '127.0.0.1' });
  const address = randomLoopback();
  const base = `http://${address}:8080`;
  const logger = pino({ level: 'debug' }, pino.destination({ dest: '/tmp/scratch/log.json', sync: true }));
  await writeFile(path.join(dir, 'all.yaml'), yaml(address, 70, 30, blue.port, green.port));
  const skein = await startStandalone({
    configDir: dir, logger, xds: { socketPath: path.join(runDir, 'xds.sock') }, adminPort: 0, statusPort: 0,
    delta: process.env['DELTA'] === '1', envoy: true, nodeId: 'scr', nodeCluster: 'scr', runDir, drainTimeoutMs: 200,
  });
  try {
    await skein.firstBuild;
    const get = async (p: string) => { const r = await fetch(base + p); return r.status === 200 ? (JSON.parse(await r.text()) as { backend: string }).backend : String(r.status); };
    await waitFor('serve', async () => ((await get('/x')) === 'blue' || (await get('/x')) === 'green' ? true : undefined), 20000);
    console.log('initial ok');
    await writeFile(path.join(dir, 'all.yaml'), yaml(address, 0, 1, blue.port, green.port, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: only-blue, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /only-blue } }]
      backendRefs: [{ name: blue, port: 80 }]
`));
    await new Promise((r) => setTimeout(r, 1500));
    const results = [];
    for (let i = 0; i < 10; i++) results.push(await get('/any/' + i), await get('/only-blue/' + i));
    console.log('after edit', results.join(','));
    console.log(JSON.stringify((await skein.statusReport()).xds, null, 1));
    const dump = JSON.stringify(await getConfigDump(skein.envoy?.adminUrl ?? ''));
    console.log('dump has only-blue', dump.includes('only-blue'));
  } finally {
    await skein.stop();
    await blue.close();
    await green.close();
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  }
});
