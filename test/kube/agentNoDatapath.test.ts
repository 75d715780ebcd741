// The datapath is optional: where the agent cannot load BPF it says why in one line, with the code, and
// serves L7 all the same. Forced for real: `bin/skein agent` as an unprivileged user (setpriv to
// nobody: SKEIN_BPF_UNAVAILABLE) programs a real Envoy from a Gateway and an HTTPRoute; in-process with
// the BPF objects looked for in an empty directory (SKEIN_BPF_NOT_BUILT) it publishes its config.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { chmod, copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgent } from '../../src/agent.js';
import { KubeClient } from '../../src/sources/kubernetes/kubeClient.js';
import { support } from '../datapath/helpers.js';
import { freePort } from '../harness/kube.js';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { ensureEnvoy } from '../helpers/envoy.js';
import { waitFor } from '../helpers/net.js';
import {
  gateway,
  gatewayClass,
  get,
  httpRoute,
  loopback,
  type NetnsBackends,
  namespaceObject,
  SKEIN_BIN,
  service,
  startNetnsBackends,
  TestObjects,
} from './helpers.js';

const NOBODY = '65534';

interface Proc {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | string>;
}

function start(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  const add = (d: Buffer): void => {
    out += d.toString();
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code ?? -1)),
  );
  return { child, output: () => out, exited };
}

async function stop(p: Proc | undefined): Promise<number | string | undefined> {
  if (p === undefined) return undefined;
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 10_000);
  try {
    return await p.exited;
  } finally {
    clearTimeout(t);
  }
}

describe('skein agent without a datapath serves L7 and says why in one line', () => {
  const kube = useKube();
  const ns = uniqueName('nodp');
  const className = uniqueName('skein');
  let objects: TestObjects;
  let backends: NetnsBackends | undefined;
  let dir = '';
  const procs: Proc[] = [];

  beforeAll(async () => {
    objects = new TestObjects(kubeConfigFor(kube()));
    await objects.apply(namespaceObject(ns));
    await objects.apply(gatewayClass(className));
    dir = await mkdtemp(path.join(os.tmpdir(), 'skein-nodp-'));
    // The unprivileged agent's files: a directory it may write, a kubeconfig it may read.
    await chmod(dir, 0o777);
  });

  afterAll(async () => {
    for (const p of procs.reverse()) await stop(p);
    await objects?.delete(gatewayClass(className)).catch(() => undefined);
    await objects?.delete(namespaceObject(ns)).catch(() => undefined);
    await backends?.stop();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('as a user that cannot load BPF: SKEIN_BPF_UNAVAILABLE once, and its Envoy serves the route', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test switches to nobody, so it runs as root');
    const envoy = await ensureEnvoy();
    backends = await startNetnsBackends(['blue']);
    const address = loopback();
    const port = randomInt(20_000, 59_000);
    await objects.applyAll(
      service(ns, 'blue', { address: backends.address, port: backends.ports['blue'] ?? 0 }),
    );
    await objects.apply(gateway(ns, 'gw', { className, address, port }));
    await objects.apply(
      httpRoute(ns, 'web', { gateway: 'gw', hostname: 'web.example', rules: [{ backend: 'blue' }] }),
    );

    const kubeconfig = path.join(dir, 'kubeconfig');
    await copyFile(kube().kubeconfigPath, kubeconfig);
    await chmod(kubeconfig, 0o644);
    const statusPort = await freePort();
    const bootstrap = path.join(dir, 'bootstrap.json');
    const agent = start(
      'setpriv',
      [
        `--reuid=${NOBODY}`,
        `--regid=${NOBODY}`,
        '--clear-groups',
        '--',
        process.execPath,
        SKEIN_BIN,
        'agent',
        '--kubeconfig',
        kubeconfig,
        '--node-name',
        uniqueName('node'),
        '--namespace',
        ns,
        '--no-envoy',
        '--bootstrap-out',
        bootstrap,
        '--xds-socket',
        path.join(dir, 'xds.sock'),
        '--admin-port',
        String(await freePort()),
        '--status-port',
        String(statusPort),
      ],
      { ...process.env, SKEIN_LOG_FORMAT: 'json', SKEIN_LOG_LEVEL: 'info', HOME: dir },
    );
    procs.push(agent);
    await waitFor(
      'the bootstrap',
      async () => {
        if (agent.child.exitCode !== null) throw new Error(`the agent exited:\n${agent.output()}`);
        return (await readFile(bootstrap, 'utf8').catch(() => '')) === '' ? undefined : true;
      },
      20_000,
      100,
    );
    procs.push(
      start(envoy.path, ['-c', bootstrap, '--disable-hot-restart', '-l', 'warning', '--concurrency', '1']),
    );
    const reply = await waitFor(
      'web.example through Envoy',
      async () => {
        const r = await get(address, port, 'web.example').catch(() => undefined);
        return r?.backend === 'blue' ? r : undefined;
      },
      30_000,
    );
    expect(reply.status).toBe(200);
    const lines = agent
      .output()
      .split('\n')
      .filter((l) => l.includes('SKEIN_BPF_'));
    expect(lines).toHaveLength(1);
    expect((JSON.parse(lines[0] ?? '{}') as { level: number; msg: string }).msg).toMatch(
      /^eBPF datapath off, serving L7 only: SKEIN_BPF_UNAVAILABLE: the eBPF datapath cannot run on this machine: it needs root \(or CAP_BPF and CAP_NET_ADMIN\)\. /,
    );
    const status = (await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json()) as {
      datapath: { enabled: boolean; reason: string };
    };
    expect(status.datapath.enabled).toBe(false);
    expect(status.datapath.reason).toMatch(/^SKEIN_BPF_UNAVAILABLE: /);
    expect((await fetch(`http://127.0.0.1:${statusPort}/readyz`)).status).toBe(200);
    const text = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [SKEIN_BIN, 'status', '--port', String(statusPort)],
        { timeout: 30_000 },
        (err, out) => (err === null ? resolve(out) : reject(err)),
      ),
    );
    expect(text.split('\n')).toContainEqual(
      expect.stringMatching(
        /^datapath: off \(SKEIN_BPF_UNAVAILABLE: the eBPF datapath cannot run on this machine: /,
      ),
    );
    expect(await stop(agent)).toBe(0);
  });

  it.skipIf(!support.ok)(
    `with the BPF objects not built: SKEIN_BPF_NOT_BUILT, and the config is published${support.ok ? '' : ` (skipped: ${support.ok ? '' : support.reason})`}`,
    async () => {
      const empty = await mkdtemp(path.join(os.tmpdir(), 'skein-no-objects-'));
      const lines: string[] = [];
      const logger = pino(
        { level: 'info', base: null },
        new Writable({
          write(chunk: Buffer, _enc, cb) {
            for (const l of chunk.toString().split('\n'))
              if (l !== '') lines.push((JSON.parse(l) as { msg: string }).msg);
            cb();
          },
        }),
      );
      const client = new KubeClient(kubeConfigFor(kube()));
      const agent = await startAgent({
        api: client,
        nodeName: uniqueName('node'),
        namespace: ns,
        logger,
        xdsSocketPath: path.join(dir, 'in-process.sock'),
        adminPort: 0,
        statusPort: 0,
        delta: true,
        envoy: false,
        nodeId: 'nodp',
        nodeCluster: 'skein-test',
        runDir: path.join(dir, 'run'),
        datapath: {
          bpffsRoot: '/sys/fs/bpf',
          pinRoot: '/sys/fs/bpf/skein-not-used',
          cgroupRoot: '/sys/fs/cgroup',
          stateDir: path.join(dir, 'state'),
          serviceLb: true,
          l7Proxy: true,
          proxyPort: 15001,
          flowEvents: 'flows',
          objectDir: empty,
        },
      });
      try {
        await agent.firstBuild;
        expect(agent.datapath).toBeUndefined();
        expect(lines.filter((l) => l.includes('SKEIN_BPF'))).toEqual([
          `eBPF datapath off, serving L7 only: SKEIN_BPF_NOT_BUILT: the BPF object ${path.join(empty, 'policy.bpf.o')} is not built: run \`node scripts/setup.mjs bpf\` (objects are looked for in ${empty}, not ${path.resolve(import.meta.dirname, '../../dist/bpf')})`,
        ]);
        expect((await agent.statusReport()).datapath).toEqual({
          enabled: false,
          reason: expect.stringMatching(/^SKEIN_BPF_NOT_BUILT: the BPF object /),
        });
        expect(agent.controlPlane.lastBuild?.published).toBe(true);
        // Nothing was pinned: the datapath never started.
        await expect(readFile('/sys/fs/bpf/skein-not-used')).rejects.toThrow(/ENOENT/);
      } finally {
        await agent.stop();
        client.close();
        await rm(empty, { recursive: true, force: true });
      }
    },
  );
});
