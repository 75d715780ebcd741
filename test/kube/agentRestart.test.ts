// Agent restart (issue 6): `bin/skein agent` as a child process programs a node of network namespaces
// from the real API server; while a pod connects to a Service VIP in a bounded loop, the agent is
// killed (SIGKILL, by pid) and started again. No connection fails, the restarted agent swaps its
// programs in and writes no map entry, new connections are still balanced over every backend, and the
// policy holds throughout (a denied pod stays denied).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type Child, describeKernel, kernelSuite, removeAll, tempDir } from '../datapath/helpers.js';
import { freePort } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { waitFor } from '../helpers/net.js';
import { SKEIN_BIN } from './helpers.js';
import { type NodeWorld, type Probe, startNodeWorld } from './nodeWorld.js';

interface Proc {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | string>;
}

function start(args: readonly string[]): Proc {
  const child = spawn(process.execPath, [SKEIN_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SKEIN_LOG_FORMAT: 'json', SKEIN_LOG_LEVEL: 'debug' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)),
  );
  return { child, output: () => out, exited };
}

async function stop(p: Proc | undefined, signal: NodeJS.Signals): Promise<number | string | undefined> {
  if (p === undefined) return undefined;
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

/** The JSON log messages of a process. */
function messages(p: Proc): string[] {
  return p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => (JSON.parse(l) as { msg?: string }).msg ?? '');
}

describeKernel(kernelSuite('agent restart under traffic (skein agent as a process, SIGKILL)'), () => {
  const kube = useKube();
  const ns = uniqueName('restart');
  const nodeName = uniqueName('node');
  let world: NodeWorld;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let config = '';
  let args: string[] = [];
  let statusPort = 0;
  const agents: Proc[] = [];
  const loops: Child[] = [];
  let vip = '';

  const address = (pod: string): string => world.pods.get(pod)?.address ?? '';
  const ready = async (): Promise<boolean> =>
    (await fetch(`http://127.0.0.1:${statusPort}/readyz`).catch(() => undefined))?.status === 200;

  beforeAll(async () => {
    const kc = kubeConfigFor(kube());
    world = await startNodeWorld(kc, {
      nodeName,
      namespace: ns,
      pods: [
        { name: 'client', labels: { app: 'client' } },
        { name: 'other', labels: { app: 'other' } },
        { name: 'web-1', labels: { app: 'web' }, tcp: [7000] },
        { name: 'web-2', labels: { app: 'web' }, tcp: [7000] },
        { name: 'web-3', labels: { app: 'web' }, tcp: [7000] },
      ],
    });
    dir = await tempDir('skein-agent-restart-');
    config = path.join(dir.path, 'config.yaml');
    await writeFile(
      config,
      stringify({
        kubeProxyReplacement: true,
        l7Proxy: true,
        datapath: {
          bpffsRoot: world.bpffs.path,
          pinRoot: world.pinRoot,
          cgroupRoot: world.cgroup.path,
          stateDir: world.stateDir,
          netns: world.node.path,
        },
      }),
    );
    statusPort = await freePort();
    args = [
      'agent',
      '--config',
      config,
      '--node-name',
      nodeName,
      '--kubeconfig',
      kube().kubeconfigPath,
      '--namespace',
      ns,
      '--no-envoy',
      '--xds-socket',
      path.join(dir.path, 'xds.sock'),
      '--admin-port',
      String(await freePort()),
      '--status-port',
      String(statusPort),
    ];
    vip = await world.service('web', 80, 7000, ['web-1', 'web-2', 'web-3']);
    await world.apply({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'web-ingress', namespace: ns },
      spec: {
        podSelector: { matchLabels: { app: 'web' } },
        // client-node names `from` `_from` (see agentDatapath.test.ts).
        ingress: [{ _from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 7000 }] }],
      },
    } as never);
  }, 180_000);

  afterAll(async () => {
    for (const l of loops) await l.kill();
    for (const a of agents) await stop(a, 'SIGKILL');
    if (world !== undefined) {
      await new Promise<void>((resolve) =>
        execFile(
          process.execPath,
          [SKEIN_BIN, 'agent', '--cleanup', '--config', config],
          { timeout: 60_000 },
          () => resolve(),
        ),
      );
      await world.stop();
    }
    await removeAll([dir]);
  });

  it('keeps every connection and the policy through a SIGKILL and a restart, and balances after it', async () => {
    const first = start(args);
    agents.push(first);
    await waitFor(
      'the agent to be ready',
      async () => {
        if (first.child.exitCode !== null) throw new Error(`the agent exited:\n${first.output()}`);
        return (await ready()) ? true : undefined;
      },
      30_000,
      100,
    );
    await waitFor(
      'the VIP to answer and other to be denied',
      async () => {
        const [a] = await world.probe('client', [{ host: vip, port: 80 }]);
        const [b] = await world.probe('other', [{ host: address('web-1'), port: 7000 }], 500);
        return a?.ok === true && b?.ok === false ? true : undefined;
      },
      20_000,
      100,
    );

    // Connections one after another through the VIP, and a denied pod trying all along.
    const count = 1500;
    const loop = world.spawnInPod('client', 'probe.mjs', [
      '2000',
      'loop',
      'tcp',
      vip,
      '80',
      String(count),
      '5',
    ]);
    const denied = world.spawnInPod('other', 'probe.mjs', [
      '300',
      'loop',
      'tcp',
      address('web-1'),
      '7000',
      '25',
      '50',
    ]);
    loops.push(loop, denied);
    await waitFor('the loop to run', () => (loop.lines.length >= 50 ? true : undefined), 20_000);

    expect(await stop(first, 'SIGKILL')).toBe('SIGKILL');
    const killedAt = loop.lines.length;
    await waitFor(
      'connections while no agent runs',
      () => (loop.lines.length >= killedAt + 50 ? true : undefined),
      20_000,
    );
    const second = start(args);
    agents.push(second);
    await waitFor(
      'the restarted agent to be ready',
      async () => {
        if (second.child.exitCode !== null) throw new Error(`the agent exited:\n${second.output()}`);
        return (await ready()) ? true : undefined;
      },
      30_000,
      100,
    );
    // The restarted agent's first datapath update: programs swapped in place, no map entry written.
    await waitFor(
      'the restarted agent to program the datapath',
      () => (messages(second).some((m) => m.startsWith('policy maps:')) ? true : undefined),
      20_000,
      100,
    );
    const readyAt = loop.lines.length;
    expect(readyAt, 'the loop must outlast the restart; make it longer').toBeLessThan(count);
    await waitFor(
      'connections after the restart',
      () => (loop.lines.length >= readyAt + 50 ? true : undefined),
      20_000,
    );
    await loop.exited;
    await denied.exited;

    const results = loop.lines.map((l) => JSON.parse(l) as Probe);
    expect(results).toHaveLength(count);
    const failed = results.filter((r) => !r.ok);
    expect(failed, 'connections that failed around the restart').toEqual([]);
    const deniedResults = denied.lines.map((l) => JSON.parse(l) as Probe);
    expect(deniedResults).toHaveLength(25);
    expect(deniedResults.filter((r) => r.ok)).toEqual([]);

    const restarted = messages(second);
    expect(restarted).toContainEqual(
      expect.stringMatching(
        /^service load-balancing attached to cgroup .* \(0 attached, 8 swapped in, 0 detached elsewhere\)$/,
      ),
    );
    expect(restarted).toContainEqual(
      expect.stringMatching(
        /^policy maps: 5 endpoints, \d+ identities; written 0\/0\/0\/0, deleted 0\/0\/0\/0 .*links 0 attached, 10 swapped, 0 detached$/,
      ),
    );
    expect(restarted.filter((m) => m.startsWith('service maps:'))).toEqual([]);

    // New connections are balanced over all three backends, and the policy still holds.
    const after = await world.probe(
      'client',
      Array.from({ length: 60 }, () => ({ host: vip, port: 80 })),
    );
    const tally: Record<string, number> = {};
    for (const r of after) tally[r.reply ?? String(r.code)] = (tally[r.reply ?? String(r.code)] ?? 0) + 1;
    expect(Object.keys(tally).sort()).toEqual(['web-1:hi', 'web-2:hi', 'web-3:hi']);
    // Random over three: each gets at least 8 of 60 unless something is off (p < 1e-4).
    for (const n of Object.values(tally)) expect(n).toBeGreaterThanOrEqual(8);
    expect(await world.probe('other', [{ host: address('web-2'), port: 7000 }], 500)).toEqual([
      { ok: false, code: 'TIMEOUT' },
    ]);
    expect(await stop(second, 'SIGTERM')).toBe(0);
  });
});
