/**
 * The network of bench/request-latency.ts: a "node" network namespace and one namespace per "pod",
 * each joined to the node by a veth pair the way a CNI joins them (a /32 route per pod on the node, a
 * default route via a link-local gateway in the pod, static neighbours both ways), with random names.
 * Processes started through the world run inside a pod or the node (nsenter execs, so each child's pid
 * is the program's own) and are ended by pid. remove() ends them and deletes every namespace, link and
 * directory the world made, whatever failed before.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export function run(
  cmd: string,
  args: readonly string[],
  input?: string,
  timeoutMs = 60_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    if (input !== undefined) {
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
  });
}

export interface PodSpec {
  readonly name: string;
  readonly address: string;
}

export interface Pod extends PodSpec {
  /** /run/netns/<name>, for nsenter --net. */
  readonly netns: string;
  /** The host side of its veth, in the node namespace. */
  readonly hostInterface: string;
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** stderr so far (for error messages). */
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, SIGKILL after 3 s; resolves once it has exited. */
  stop(): Promise<void>;
}

export interface World {
  readonly id: string;
  /** A private temporary directory (sockets, configs, access logs). */
  readonly dir: string;
  readonly node: { readonly netns: string; readonly address: string };
  readonly pods: ReadonlyMap<string, Pod>;
  pod(name: string): Pod;
  /** Starts `argv` in a network namespace (a /run/netns path), optionally inside a cgroup first. */
  spawn(netns: string, argv: readonly string[], options?: { cgroup?: string; what?: string }): Proc;
  /** Runs `argv` in a network namespace to its end; its stdout. */
  exec(netns: string, argv: readonly string[], input?: string, timeoutMs?: number): Promise<string>;
  /** Something to undo at remove(), before the namespaces go (last added, first run). */
  onRemove(undo: () => Promise<void> | void): void;
  remove(): Promise<void>;
}

async function mac(netns: string, dev: string): Promise<string> {
  const out = await run('nsenter', [`--net=${netns}`, '--', 'ip', '-j', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(out) as { address: string }[];
  if (link === undefined) throw new Error(`no interface ${dev} in ${netns}`);
  return link.address;
}

function track(child: ChildProcess, what: string): Proc {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-16_384);
  });
  let done = child.exitCode !== null;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      done = true;
      resolve(code);
    });
  });
  if (child.pid === undefined) throw new Error(`${what} did not start`);
  return {
    child,
    pid: child.pid,
    stderr: () => stderr,
    exited,
    async stop() {
      if (done) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Makes the node and the pods; on failure removes what it made and throws. */
export async function makeWorld(
  pods: readonly PodSpec[],
  options: { nodeAddress: string; prefix: string },
): Promise<World> {
  const id = randomBytes(3).toString('hex');
  const dir = await mkdtemp(path.join(os.tmpdir(), `skein-${options.prefix}-`));
  const namespaces: string[] = [];
  const procs: Proc[] = [];
  const undo: (() => Promise<void> | void)[] = [];
  const made = new Map<string, Pod>();
  const nodeName = `${options.prefix}-${id}-node`;
  const nodeNetns = `/run/netns/${nodeName}`;
  const inNs = (netns: string, argv: readonly string[]): string[] => [`--net=${netns}`, '--', ...argv];

  const remove = async (): Promise<void> => {
    let first: unknown;
    const attempt = async (f: () => Promise<void> | void): Promise<void> => {
      try {
        await f();
      } catch (err) {
        first ??= err;
      }
    };
    for (const p of procs.splice(0).reverse()) await attempt(() => p.stop());
    for (const u of undo.splice(0).reverse()) await attempt(u);
    for (const n of namespaces.splice(0).reverse())
      await attempt(async () => {
        await run('ip', ['netns', 'del', n]);
      });
    await attempt(() => rm(dir, { recursive: true, force: true }));
    if (first !== undefined) throw first;
  };

  const world: World = {
    id,
    dir,
    node: { netns: nodeNetns, address: options.nodeAddress },
    pods: made,
    pod(name) {
      const p = made.get(name);
      if (p === undefined) throw new Error(`no pod ${name}`);
      return p;
    },
    spawn(netns, argv, spawnOptions = {}) {
      const inner = ['nsenter', ...inNs(netns, argv)];
      const [cmd, ...args] =
        spawnOptions.cgroup === undefined
          ? inner
          : [
              'sh',
              '-c',
              'echo $$ > "$1" && shift && exec "$@"',
              'sh',
              path.join(spawnOptions.cgroup, 'cgroup.procs'),
              ...inner,
            ];
      const child = spawn(cmd ?? 'nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const proc = track(child, spawnOptions.what ?? argv[0] ?? 'process');
      procs.push(proc);
      return proc;
    },
    exec(netns, argv, input, timeoutMs) {
      return run('nsenter', inNs(netns, argv), input, timeoutMs);
    },
    onRemove(u) {
      undo.push(u);
    },
    remove,
  };

  try {
    await run('ip', ['netns', 'add', nodeName]);
    namespaces.push(nodeName);
    const nodeIp = (args: string[]) => run('nsenter', inNs(nodeNetns, ['ip', ...args]));
    await nodeIp(['link', 'set', 'lo', 'up']);
    await world.exec(nodeNetns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    await world.exec(nodeNetns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
    await nodeIp(['addr', 'add', `${options.nodeAddress}/32`, 'dev', 'lo']);
    for (const [i, spec] of pods.entries()) {
      const name = `${options.prefix}-${id}-${spec.name}`;
      const netns = `/run/netns/${name}`;
      await run('ip', ['netns', 'add', name]);
      namespaces.push(name);
      const podIp = (args: string[]) => run('nsenter', inNs(netns, ['ip', ...args]));
      await podIp(['link', 'set', 'lo', 'up']);
      await world.exec(netns, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
      const host = `rl${id}${i}`;
      const peer = `rp${id}${i}`;
      // Both ends are made in their own namespaces (no name ever exists in this one); the pod's end is
      // renamed eth0, as a CNI does.
      await run('ip', [
        'link',
        'add',
        host,
        'netns',
        nodeName,
        'type',
        'veth',
        'peer',
        'name',
        peer,
        'netns',
        name,
      ]);
      await podIp(['link', 'set', peer, 'name', 'eth0']);
      await podIp(['addr', 'add', `${spec.address}/32`, 'dev', 'eth0']);
      await podIp(['link', 'set', 'eth0', 'up']);
      await nodeIp(['link', 'set', host, 'up']);
      const hostMac = await mac(nodeNetns, host);
      const podMac = await mac(netns, 'eth0');
      await podIp(['route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
      await podIp(['route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
      await podIp(['neigh', 'add', '169.254.1.1', 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent']);
      await nodeIp(['route', 'add', `${spec.address}/32`, 'dev', host]);
      await nodeIp(['neigh', 'add', spec.address, 'lladdr', podMac, 'dev', host, 'nud', 'permanent']);
      made.set(spec.name, { ...spec, netns, hostInterface: host });
    }
    return world;
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
}
