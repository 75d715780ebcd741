// `skein agent` programs its node's eBPF datapath from the real API server, on the real kernel: the agent
// runs in-process here (test/kube/agentRestart.test.ts runs `bin/skein agent`) against a node of network
// namespaces (test/kube/nodeWorld.ts). From Services, EndpointSlices, Pods and NetworkPolicies alone it
// balances a ClusterIP over the pods, enforces the policy at the pods' interfaces (found through their
// routes), hands the annotated port to a real Envoy that it programs over xDS, reports drops in its logs
// and metrics, keeps identity numbers across a restart, and `skein agent --cleanup` removes it all.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Writable } from 'node:stream';
import { CoreV1Api } from '@kubernetes/client-node';
import pino from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type Agent, type AgentOptions, startAgent } from '../../src/agent.js';
import type { DatapathSettings } from '../../src/agentDatapath.js';
import { allocateIdentities, labelIdentityKey, preferredIdentity } from '../../src/policy/identities.js';
import { REDIRECT_ANNOTATION } from '../../src/policy/translate.js';
import { KubeClient } from '../../src/sources/kubernetes/kubeClient.js';
import { bpftool, describeKernel, exec, kernelSuite, removeAll, tempDir } from '../datapath/helpers.js';
import { freePort } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { ensureEnvoy } from '../helpers/envoy.js';
import { waitFor } from '../helpers/net.js';
import { SKEIN_BIN } from './helpers.js';
import { type NodeWorld, startNodeWorld } from './nodeWorld.js';

const PROXY_PORT = 15001;

/** A pino logger whose lines the test can read. */
function captureLogger(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n'))
        if (l !== '') lines.push((JSON.parse(l) as { msg: string }).msg);
      cb();
    },
  });
  return { logger: pino({ level: 'debug', base: null }, stream), lines };
}

function admin(socketPath: string, p: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: p, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`admin ${p} timed out`)));
    req.end();
  });
}

function run(
  cmd: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
  });
}

describeKernel(kernelSuite('skein agent programs the datapath of its node'), () => {
  const kube = useKube();
  const ns = uniqueName('dp');
  const nodeName = uniqueName('node');
  let world: NodeWorld;
  let client: KubeClient;
  let agent: Agent | undefined;
  let options: AgentOptions;
  let settings: DatapathSettings;
  let envoy: ChildProcess | undefined;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let adminSocket = '';
  const log = captureLogger();
  let vip = '';

  const address = (pod: string): string => world.pods.get(pod)?.address ?? '';
  const metrics = async (): Promise<string> => (await fetch(`${agent?.status.url}/metrics`)).text();

  beforeAll(async () => {
    const found = await ensureEnvoy();
    const kc = kubeConfigFor(kube());
    world = await startNodeWorld(kc, {
      nodeName,
      namespace: ns,
      pods: [
        { name: 'client', labels: { app: 'client' } },
        { name: 'other', labels: { app: 'other' } },
        { name: 'web-1', labels: { app: 'web' }, tcp: [7000], http: [8080, 8081] },
        { name: 'web-2', labels: { app: 'web' }, tcp: [7000], http: [8080, 8081] },
      ],
    });
    dir = await tempDir('skein-agent-dp-');
    client = new KubeClient(kc);
    settings = {
      bpffsRoot: world.bpffs.path,
      pinRoot: world.pinRoot,
      cgroupRoot: world.cgroup.path,
      stateDir: world.stateDir,
      netns: world.node.path,
      serviceLb: true,
      l7Proxy: true,
      proxyPort: PROXY_PORT,
      flowEvents: 'flows',
      proxyWaitMs: 15_000,
    };
    const bootstrapOut = path.join(dir.path, 'bootstrap.json');
    options = {
      api: client,
      nodeName,
      namespace: ns,
      logger: log.logger,
      xdsSocketPath: path.join(dir.path, 'xds.sock'),
      adminPort: await freePort(),
      statusPort: 0,
      delta: true,
      envoy: false,
      bootstrapOut,
      nodeId: `test-${nodeName}`,
      nodeCluster: 'skein-test',
      runDir: path.join(dir.path, 'run'),
      holdOffMs: 5,
      maxDelayMs: 50,
      datapath: settings,
    };
    agent = await startAgent(options);
    await agent.firstBuild;
    expect(agent.datapath).toBeDefined();

    // The node Envoy, in the node's network namespace (where redirected packets are delivered), from the
    // bootstrap the agent wrote; admin on a Unix socket so the test can reach it from here.
    const bootstrap = JSON.parse(await readFile(bootstrapOut, 'utf8')) as Record<string, unknown>;
    adminSocket = path.join(dir.path, 'admin.sock');
    bootstrap['admin'] = { address: { pipe: { path: adminSocket } } };
    const file = path.join(dir.path, 'envoy.json');
    await writeFile(file, JSON.stringify(bootstrap));
    envoy = spawn(
      'nsenter',
      [
        `--net=${world.node.path}`,
        '--',
        found.path,
        '-c',
        file,
        '--disable-hot-restart',
        '--concurrency',
        '1',
        '-l',
        'warning',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    envoy.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await waitFor(
      'Envoy to be LIVE',
      async () => ((await admin(adminSocket, '/ready').catch(() => '')).trim() === 'LIVE' ? true : undefined),
      20_000,
      100,
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}: ${stderr}`);
    });
  }, 180_000);

  afterAll(async () => {
    if (envoy?.pid !== undefined && envoy.exitCode === null) {
      const exited = new Promise((r) => envoy?.once('exit', r));
      envoy.kill('SIGTERM');
      const t = setTimeout(() => envoy?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    await agent?.stop();
    client?.close();
    // Whatever a failed test left attached: the agent's own cleanup, then the world.
    if (world !== undefined) {
      try {
        if (settings !== undefined && dir !== undefined)
          await run(process.execPath, [SKEIN_BIN, 'agent', '--cleanup', '--config', await configFile()]);
      } finally {
        await world.stop();
      }
    }
    await removeAll([dir]);
  });

  /** The settings file a chart would write for this node. */
  const configFile = async (): Promise<string> => {
    const file = path.join(dir.path, 'config.yaml');
    await writeFile(
      file,
      stringify({
        kubeProxyReplacement: true,
        l7Proxy: true,
        datapath: {
          bpffsRoot: settings.bpffsRoot,
          pinRoot: settings.pinRoot,
          cgroupRoot: settings.cgroupRoot,
          stateDir: settings.stateDir,
          netns: settings.netns,
          proxyPort: PROXY_PORT,
        },
      }),
    );
    return file;
  };

  it('balances a Service ClusterIP over its pods, from the Service and EndpointSlice alone', async () => {
    vip = await world.service('web', 80, 7000, ['web-1', 'web-2']);
    await waitFor('the VIP to answer', async () => {
      const [r] = await world.probe('client', [{ host: vip, port: 80 }]);
      return r?.ok === true ? r : undefined;
    });
    const replies = await world.probe(
      'client',
      Array.from({ length: 40 }, () => ({ host: vip, port: 80 })),
    );
    expect(replies.every((r) => r.ok)).toBe(true);
    const tally: Record<string, number> = {};
    for (const r of replies) tally[r.reply ?? ''] = (tally[r.reply ?? ''] ?? 0) + 1;
    expect(Object.keys(tally).sort()).toEqual(['web-1:hi', 'web-2:hi']);
    // Random over two: each gets at least 8 of 40 unless something is off (p < 1e-4).
    for (const n of Object.values(tally)) expect(n).toBeGreaterThanOrEqual(8);
    expect((await agent?.statusReport())?.datapath).toMatchObject({
      enabled: true,
      serviceLb: true,
      services: 1,
    });
    // The socket load balancer's events reach the same log and metrics as the policy programs'.
    await waitFor('the translations in the metrics', async () => {
      const m = /^skein_datapath_flows_total\{verdict="translated",reason="lbBackend"\} (\d+)$/m.exec(
        await metrics(),
      );
      return m !== null && Number(m[1]) >= 40 ? true : undefined;
    });
    // At connect() the socket has no source address yet: the event names the VIP and the backend.
    const ips = ['web-1', 'web-2'].map((p) => address(p).replace(/\./g, '\\.')).join('|');
    const translated = new RegExp(
      `^flow: translated \\S+ -> ${vip.replace(/\./g, '\\.')}:80 \\(as (${ips}):7000\\)/tcp \\(lbBackend, connect4, `,
    );
    expect(log.lines.filter((l) => translated.test(l)).length).toBeGreaterThanOrEqual(40);
    // skein status reads the agent's /status.
    const port = new URL(agent?.status.url ?? '').port;
    const status = await run(process.execPath, [SKEIN_BIN, 'status', '--port', port]);
    expect(status.code).toBe(0);
    const lines = status.stdout.split('\n');
    expect(lines[0]).toBe(`agent:   node ${nodeName}, API server ${kube().server}`);
    expect(lines).toContain(
      `datapath: on, pins under ${world.pinRoot}; service load-balancing on (cgroup ${world.cgroup.path}); L7 proxy on; tc attach tcx`,
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^ {2}1 services, 4 local endpoints, \d+ identities; proxy listeners: none$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^kubernetes: synced \(17 informers, \d+ objects, \d+ builds\)$/),
    );
  });

  it('enforces a NetworkPolicy at the pods’ interfaces; the drop is in the log and the metrics, with its reason', async () => {
    await world.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'web-ingress', namespace: ns, annotations: { [REDIRECT_ANNOTATION]: '8080' } },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        ingress: [
          {
            // client-node's model calls `from` `_from` (a reserved word in its generated code) and drops
            // what its model does not know, so this is how `from` reaches the API server through it.
            _from: [{ podSelector: { matchLabels: { app: 'client' } } }],
            ports: [{ port: 7000 }, { port: 8080 }, { port: 8081 }],
          },
        ],
      },
    } as never);
    await waitFor(
      'other to be denied',
      async () => {
        const [r] = await world.probe('other', [{ host: address('web-1'), port: 7000 }], 800);
        return r?.ok === false ? r : undefined;
      },
      20_000,
    );
    const targets = [
      { host: address('web-1'), port: 7000 },
      { host: address('web-2'), port: 7000 },
      { host: vip, port: 80 },
    ];
    expect(await world.probe('client', targets)).toEqual([
      { ok: true, reply: 'web-1:hi' },
      { ok: true, reply: 'web-2:hi' },
      { ok: true, reply: expect.stringMatching(/^web-[12]:hi$/) },
    ]);
    expect(await world.probe('other', targets, 800)).toEqual(
      targets.map(() => ({ ok: false, code: 'TIMEOUT' })),
    );

    // The drop, decided at other's interface for web's ingress: counted by reason and direction.
    const dropped = await waitFor('the drop in the metrics', async () => {
      const m = /^skein_datapath_drops_total\{reason="policyDenied",direction="ingress"\} (\d+)$/m.exec(
        await metrics(),
      );
      return m !== null && Number(m[1]) >= 3 ? Number(m[1]) : undefined;
    });
    expect(dropped).toBeGreaterThanOrEqual(3);
    const text = await metrics();
    expect(text).toMatch(/^skein_datapath_flows_total\{verdict="drop",reason="policyDenied"\} \d+$/m);
    expect(text).toMatch(/^skein_datapath_flows_total\{verdict="pass",reason="policyAllowed"\} \d+$/m);
    expect(text).toMatch(/^skein_policy_packets_total\{reason="policyDenied"\} \d+$/m);
    const other = address('other').replace(/\./g, '\\.');
    const web1 = address('web-1').replace(/\./g, '\\.');
    expect(
      log.lines.some((l) =>
        new RegExp(
          `^dropped: drop ${other}:\\d+ -> ${web1}:7000/tcp \\(policyDenied, policyIngress, identities \\d+ -> \\d+\\)$`,
        ).test(l),
      ),
    ).toBe(true);
    // Allowed flows are logged at debug.
    expect(log.lines.some((l) => l.startsWith('flow: pass ') && l.includes('policyAllowed'))).toBe(true);
  });

  it('hands the redirected port to the node Envoy it programs over xDS: Envoy sees the pod, forwards to the original destination', async () => {
    const listener = 'listener.0.0.0.0_15001.downstream_cx_total';
    const stat = async (name: string): Promise<number> =>
      Number(
        new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)$`, 'm').exec(
          await admin(adminSocket, '/stats'),
        )?.[1] ?? 0,
      );
    // Skein's xDS gave Envoy the transparent listener (the proxy port is reserved for it).
    expect(agent?.controlPlane.ir?.listeners.find((l) => l.transparent === true)?.name).toBe(
      'listener/0.0.0.0/15001',
    );
    const before = await stat(listener);
    const redirected = await world.httpGet('client', address('web-1'), 8080);
    expect(redirected).toMatchObject({ status: 200, body: { backend: 'web-1-8080' } });
    const headers = (redirected as { body: { headers: Record<string, string> } }).body.headers;
    // Envoy saw the client pod as the peer (it appends it to X-Forwarded-For) and sent the request on to
    // the address and port the client asked for.
    expect(headers['x-forwarded-for']).toBe(address('client'));
    expect(headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(await stat(listener)).toBe(before + 1);
    expect(await stat('cluster.skein_original-destination.upstream_cx_total')).toBeGreaterThanOrEqual(1);
    // The other allowed port does not go through Envoy at all.
    const direct = await world.httpGet('client', address('web-2'), 8081);
    expect(direct).toMatchObject({ status: 200, body: { backend: 'web-2-8081' } });
    expect(
      (direct as { body: { headers: Record<string, string> } }).body.headers['x-forwarded-for'],
    ).toBeUndefined();
    expect(await stat(listener)).toBe(before + 1);
    // And a denied pod is still denied on the redirected port.
    expect(await world.httpGet('other', address('web-1'), 8080)).toEqual({ error: 'TIMEOUT' });
  });

  it('keeps every identity number across an agent restart, a collision included', async () => {
    // Two label sets whose numbers collide, the second created later but sorting first: without the
    // numbers handed out before, a restart would give the first number to the second set.
    const nsLabels = { 'kubernetes.io/metadata.name': ns };
    const byId = new Map<number, string>();
    let pair: [string, string] | undefined;
    for (let i = 0; i < 200_000 && pair === undefined; i++) {
      const v = `v${i}`;
      const id = preferredIdentity(labelIdentityKey(ns, { role: v }, nsLabels));
      const seen = byId.get(id);
      if (seen !== undefined) pair = seen < v ? [v, seen] : [seen, v];
      else byId.set(id, v);
    }
    if (pair === undefined) throw new Error('no collision found');
    const [first, second] = pair; // second < first as keys
    const key = (v: string): string => labelIdentityKey(ns, { role: v }, nsLabels);
    expect(key(second) < key(first)).toBe(true);
    const addPod = async (name: string, role: string, ip: string): Promise<void> => {
      await world.apply({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: ns, labels: { role } },
        spec: { nodeName, containers: [{ name: 'app', image: 'skein-test' }] },
      } as never);
      const core = kubeConfigFor(kube()).makeApiClient(CoreV1Api);
      const current = await core.readNamespacedPod({ name, namespace: ns });
      await core.replaceNamespacedPodStatus({
        name,
        namespace: ns,
        body: { ...current, status: { phase: 'Running', podIP: ip, podIPs: [{ ip }] } },
      });
    };
    const idOf = (v: string): number | undefined =>
      agent?.datapath?.policyIr?.identities.find((i) => i.kind === 'labels' && i.podLabels['role'] === v)?.id;
    const subnet = address('client').split('.').slice(0, 3).join('.');
    await addPod('collide-a', first, `${subnet}.200`);
    const p = await waitFor('the first set’s identity', () => idOf(first));
    await addPod('collide-b', second, `${subnet}.201`);
    const q = await waitFor('the second set’s identity', () => idOf(second));
    expect(p).toBe(preferredIdentity(key(first)));
    expect(q).toBe(p + 1);
    // The control: derived afresh, the numbers would swap.
    const fresh = allocateIdentities([key(first), key(second)]);
    expect([fresh.get(key(first)), fresh.get(key(second))]).toEqual([p + 1, p]);

    const before = agent?.datapath?.policyIr?.identities;
    const file = JSON.parse(await readFile(path.join(world.stateDir, 'identities.json'), 'utf8')) as {
      identities: Record<string, number>;
    };
    expect(file.identities[key(first)]).toBe(p);
    expect(file.identities[key(second)]).toBe(p + 1);

    await agent?.stop();
    agent = await startAgent(options);
    await agent.firstBuild;
    await waitFor('the restarted agent’s policy', () => (idOf(second) !== undefined ? true : undefined));
    expect(agent.datapath?.policyIr?.identities).toEqual(before);
    // The policy kept holding through it.
    expect(await world.probe('other', [{ host: address('web-1'), port: 7000 }], 800)).toEqual([
      { ok: false, code: 'TIMEOUT' },
    ]);
  });

  it('skein agent --cleanup removes what it attached, pinned and routed, and says so; a second run finds nothing', async () => {
    await agent?.stop();
    agent = undefined;
    // Stopping the agent leaves everything in place: the node keeps its datapath.
    expect((await world.probe('client', [{ host: vip, port: 80 }]))[0]?.ok).toBe(true);
    const cgroupProgs = async (): Promise<string> =>
      (await exec(bpftool(), ['cgroup', 'show', world.cgroup.path])).trim();
    expect(await cgroupProgs()).toMatch(/connect4/);
    const config = await configFile();
    const first = await run(process.execPath, [SKEIN_BIN, 'agent', '--cleanup', '--config', config]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^removed \d+:$/);
    for (const want of [
      /^ {2}cgroup link skein_connect4 \(/,
      /^ {2}tcx link skein_policy_from_endpoint_\d+ \(/,
      /^ {2}pinned map skein_policy$/,
      /^ {2}pinned map skein_services$/,
      /^ {2}pinned ring buffer skein_flows$/,
      /^ {2}IPv4 rule fwmark 0xa000\/0xf000 lookup 2103$/,
      /^ {2}IPv4 route local default dev lo table 2103$/,
      new RegExp(`^ {2}pin directory ${world.pinRoot}$`),
    ])
      expect(
        lines.some((l) => want.test(l)),
        String(want),
      ).toBe(true);
    // Gone: the pins, the programs on the cgroup and on the pods' interfaces, the routing.
    expect(await cgroupProgs()).toBe('');
    const veth = world.pods.get('web-1')?.hostInterface ?? '';
    expect(
      (
        await exec('nsenter', [`--net=${world.node.path}`, '--', bpftool(), 'net', 'show', 'dev', veth])
      ).trim(),
    ).not.toMatch(/skein/);
    expect((await exec('ip', ['-n', world.node.name, 'rule', 'show'])).trim()).not.toMatch(/2103/);
    // Traffic is on its own again: the VIP goes nowhere, and the denied pod passes.
    expect((await world.probe('client', [{ host: vip, port: 80 }], 800))[0]?.ok).toBe(false);
    expect(await world.probe('other', [{ host: address('web-1'), port: 7000 }])).toEqual([
      { ok: true, reply: 'web-1:hi' },
    ]);

    const second = await run(process.execPath, [SKEIN_BIN, 'agent', '--cleanup', '--config', config]);
    expect(second).toEqual({
      code: 0,
      stdout: `nothing to remove: no pins under ${world.pinRoot}, no proxy routing\n`,
      stderr: '',
    });
  });
});
