import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { KubeConfig } from '@kubernetes/client-node';
import { type Agent, startAgent } from '../src/agent.js';
import { silentLogger } from '../src/log.js';
import { KubeClient } from '../src/sources/kubernetes/kubeClient.js';
import type { HTTPRoute, ObjectSet } from '../src/sources/objects.js';
import { startKube } from '../test/harness/kube.js';
import { machineInfo, printTable } from './machine.js';
import type { Bench, BenchResult } from './run.js';

/**
 * One HTTPRoute edit on a real API server until a real Envoy serves it, through `skein agent`
 * (in-process): API server → watch → coalescer (10 ms hold-off) → translation → delta xDS → Envoy.
 * The route answers with a redirect whose Location names the edit, so no backend is involved; a
 * keep-alive client polls Envoy back to back and stops at the first answer with the new Location.
 *
 * Baseline, side by side: the same edit handed to the agent's ControlPlane directly (no API server,
 * no watch, no hold-off) until Envoy serves it. The ratio is the cost of the Kubernetes path.
 */

const NS = 'bench';
const PORT = 18_080;
const ADDRESS = '127.0.0.1';

function route(version: number): HTTPRoute {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'edit', namespace: NS },
    spec: {
      parentRefs: [{ name: 'gw' }],
      hostnames: ['edit.example'],
      rules: [
        {
          filters: [
            {
              type: 'RequestRedirect',
              requestRedirect: { hostname: `v${version}.example`, statusCode: 302 },
            },
          ],
        },
      ],
    },
  };
}

const agentPool = new http.Agent({ keepAlive: true, maxSockets: 1 });

function location(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: ADDRESS,
        port: PORT,
        path: '/',
        headers: { host: 'edit.example' },
        agent: agentPool,
        timeout: 2000,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers.location));
      },
    );
    req.on('error', () => resolve(undefined));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** Polls until Envoy redirects to v<version>; milliseconds since `t0`, bounded to 5 s. */
async function servedAfter(version: number, t0: number): Promise<number> {
  const want = `v${version}.example`;
  while (performance.now() - t0 < 5000) {
    if ((await location())?.includes(want)) return performance.now() - t0;
  }
  throw new Error(`Envoy did not serve ${want} within 5 s`);
}

function stats(xs: readonly number[]): { median: number; p90: number; max: number; min: number } {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { min: s[0] ?? Number.NaN, median: at(0.5), p90: at(0.9), max: s[s.length - 1] ?? Number.NaN };
}

export const bench: Bench = {
  name: 'kube-route-edit',
  description: 'HTTPRoute edit on a real kube-apiserver until a real Envoy serves it, through skein agent',
  async run({ quick }): Promise<BenchResult> {
    const edits = quick ? 8 : 30;
    const cluster = await startKube();
    const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-bench-kube-'));
    const kc = new KubeConfig();
    kc.loadFromFile(cluster.kubeconfigPath);
    const client = new KubeClient(kc);
    let agent: Agent | undefined;
    try {
      const put = (body: unknown, p: string, method = 'POST') => client.request(method, p, { body });
      await put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }, '/api/v1/namespaces');
      const gw = '/apis/gateway.networking.k8s.io/v1';
      await put(
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'GatewayClass',
          metadata: { name: 'skein' },
          spec: { controllerName: 'skein.io/gateway-controller' },
        },
        `${gw}/gatewayclasses`,
      );
      await put(
        {
          apiVersion: 'gateway.networking.k8s.io/v1',
          kind: 'Gateway',
          metadata: { name: 'gw', namespace: NS },
          spec: {
            gatewayClassName: 'skein',
            addresses: [{ type: 'IPAddress', value: ADDRESS }],
            listeners: [{ name: 'http', protocol: 'HTTP', port: PORT }],
          },
        },
        `${gw}/namespaces/${NS}/gateways`,
      );
      await put(route(0), `${gw}/namespaces/${NS}/httproutes`);
      agent = await startAgent({
        api: client,
        nodeName: 'bench',
        logger: silentLogger,
        xdsSocketPath: path.join(runDir, 'xds.sock'),
        adminPort: 0,
        statusPort: 0,
        delta: true,
        envoy: true,
        nodeId: 'bench',
        nodeCluster: 'skein-bench',
        runDir,
        drainTimeoutMs: 0,
      });
      await agent.firstBuild;
      await servedAfter(0, performance.now());

      const viaKube: number[] = [];
      const apiCall: number[] = [];
      for (let v = 1; v <= edits; v++) {
        const t0 = performance.now();
        await client.request('PATCH', `${gw}/namespaces/${NS}/httproutes/edit`, {
          body: { spec: route(v).spec },
          contentType: 'application/merge-patch+json',
        });
        apiCall.push(performance.now() - t0);
        viaKube.push(await servedAfter(v, t0));
        // Apart, so that each edit is its own burst for the coalescer.
        await new Promise((r) => setTimeout(r, 150));
      }

      // Baseline: the same kind of edit straight into the agent's ControlPlane.
      const direct: number[] = [];
      const base = agent.source.store.snapshot();
      for (let v = edits + 1; v <= edits * 2; v++) {
        const objects: ObjectSet = { ...base, httpRoutes: [route(v)] };
        const t0 = performance.now();
        agent.controlPlane.apply(objects);
        direct.push(await servedAfter(v, t0));
        await new Promise((r) => setTimeout(r, 150));
      }

      const k = stats(viaKube);
      const d = stats(direct);
      const a = stats(apiCall);
      const rows = [
        { path: 'API server edit → Envoy serves', ...k },
        { path: '  of which: the PATCH call', ...a },
        { path: 'ControlPlane.apply → Envoy serves', ...d },
      ];
      printTable(`one HTTPRoute edit, ${edits} edits each (ms)`, rows);
      process.stdout.write(`\nkube path / direct (median): ${(k.median / d.median).toFixed(2)}\n`);
      return {
        name: 'kube-route-edit',
        machine: machineInfo(agent.envoy?.version),
        edits,
        holdOffMs: 10,
        maxDelayMs: 100,
        kubeMs: { ...k, samples: viaKube },
        patchCallMs: a,
        directMs: { ...d, samples: direct },
        ratioMedian: k.median / d.median,
      };
    } finally {
      agentPool.destroy();
      await agent?.stop();
      client.close();
      await cluster.stop();
      await rm(runDir, { recursive: true, force: true });
    }
  },
};
