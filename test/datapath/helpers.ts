/**
 * Helpers for the kernel tests: a private bpffs, a cgroup v2 directory, a network namespace, child
 * processes inside them. Every helper returns what it made with a remove() that undoes it (by name and
 * by pid, never by pattern), and every wait is bounded.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe } from 'vitest';
import { checkSupport } from '../../src/datapath/addon.js';
import { cgroup2Mount } from '../../src/datapath/cgroup.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const FIXTURES = path.join(import.meta.dirname, 'fixtures');
export const LB_OBJECT = path.join(ROOT, 'dist/bpf/lb.bpf.o');
export const POLICY_OBJECT = path.join(ROOT, 'dist/bpf/policy.bpf.o');

/**
 * The kernel tests run as root on a kernel with BTF (this machine, CI); anywhere else they are skipped
 * with the reason in the suite's name. A missing build is not a reason to skip: it fails.
 */
export const support = checkSupport();
export const describeKernel = support.ok ? describe : describe.skip;
export const kernelSuite = (name: string): string =>
  support.ok ? name : `${name} (skipped: the eBPF datapath cannot run here: ${support.reason})`;

export function exec(cmd: string, args: readonly string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** bpftool (Debian puts it in /usr/sbin). */
export function bpftool(): string {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/sbin']) {
    const p = path.join(dir, 'bpftool');
    if (dir !== '' && existsSync(p)) return p;
  }
  throw new Error('bpftool is not installed: run `node scripts/setup.mjs bpf`');
}

const unique = (): string => `${process.pid}-${randomBytes(3).toString('hex')}`;

export interface Made {
  readonly path: string;
  remove(): Promise<void>;
}

/** A private BPF filesystem on a temporary directory: pins made there vanish with the unmount. */
export async function mountBpffs(): Promise<Made> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-bpffs-'));
  await exec('mount', ['-t', 'bpf', 'bpf', dir]);
  return {
    path: dir,
    async remove() {
      await exec('umount', [dir]).catch(() => exec('umount', ['-l', dir]));
      await rmdir(dir);
    },
  };
}

/** A fresh cgroup v2 directory. remove() needs its processes gone (they are ours: we wait for them). */
export async function makeCgroup(): Promise<Made> {
  const root = cgroup2Mount();
  if (root === undefined)
    throw new Error('no cgroup v2 hierarchy is mounted (/proc/self/mounts has no cgroup2)');
  const dir = path.join(root, `skein-test-${unique()}`);
  await mkdir(dir);
  return {
    path: dir,
    async remove() {
      // rmdir fails while a process is inside; ours exit on their own within their time bound.
      for (let i = 0; i < 100; i++) {
        const procs = (await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => '')).trim();
        if (procs === '') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await rmdir(dir);
    },
  };
}

/** A network namespace with its loopback up. `path` is its /run/netns file (for nsenter --net). */
export async function makeNetns(): Promise<Made & { name: string }> {
  const name = `skein-t-${unique()}`;
  await exec('ip', ['netns', 'add', name]);
  await exec('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return {
    name,
    path: `/run/netns/${name}`,
    async remove() {
      await exec('ip', ['netns', 'del', name]);
    },
  };
}

export interface Child {
  readonly process: ChildProcess;
  /** stdout lines so far. */
  readonly lines: string[];
  /** Resolves when the process exits (with its code). */
  readonly exited: Promise<number | null>;
  /** The first stdout line, within timeoutMs. */
  firstLine(timeoutMs?: number): Promise<string>;
  kill(): Promise<void>;
}

function track(child: ChildProcess, what: string): Child {
  const lines: string[] = [];
  let stderr = '';
  let buf = '';
  const waiters: (() => void)[] = [];
  child.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i = buf.indexOf('\n');
    while (i >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      for (const w of waiters.splice(0)) w();
      resolve(code);
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    process: child,
    lines,
    exited,
    async firstLine(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (lines.length === 0) {
        if (done) throw new Error(`${what} exited before printing anything: ${stderr.trim()}`);
        if (Date.now() > deadline)
          throw new Error(`${what} printed nothing within ${timeoutMs} ms: ${stderr.trim()}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
      return lines[0] ?? '';
    },
    async kill() {
      if (done || child.pid === undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Runs a fixture script with node inside a network namespace (not in any test cgroup). */
export function runInNetns(netns: string, script: string, args: readonly string[]): Child {
  const child = spawn(
    'nsenter',
    [`--net=${netns}`, '--', process.execPath, path.join(FIXTURES, script), ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return track(child, script);
}

/**
 * Runs a fixture script with node inside a cgroup (it joins before exec, so its first syscall is
 * already under the cgroup's programs) and, if given, a network namespace. The cgroup is joined first:
 * nsenter does not touch the mounts, so /sys/fs/cgroup stays visible either way.
 */
export function runInCgroup(
  cgroup: string,
  netns: string | undefined,
  script: string,
  args: readonly string[],
): Child {
  const cmd = [process.execPath, path.join(FIXTURES, script), ...args];
  const argv = netns === undefined ? cmd : ['nsenter', `--net=${netns}`, '--', ...cmd];
  const child = spawn(
    'sh',
    ['-c', 'echo $$ > "$1" && shift && exec "$@"', 'sh', path.join(cgroup, 'cgroup.procs'), ...argv],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  return track(child, script);
}

/** Runs a fixture to completion within timeoutMs; returns its stdout lines parsed as JSON. */
export async function runToEnd(child: Child, timeoutMs = 20_000): Promise<unknown[]> {
  const timer = setTimeout(() => void child.kill(), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`fixture exited with ${code}: ${child.lines.join('\n')}`);
  return child.lines.filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as unknown);
}

/** Removes everything in `made`, last first, reporting the first failure after trying them all. */
export async function removeAll(made: (Made | undefined)[]): Promise<void> {
  let first: unknown;
  for (const m of made.reverse()) {
    try {
      await m?.remove();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

/** Compiles a BPF C file with the project's flags (scripts/build-bpf.mjs compile). */
export async function compileBpf(src: string, out: string): Promise<void> {
  await exec(process.execPath, [path.join(ROOT, 'scripts/build-bpf.mjs'), 'compile', src, out], 60_000);
}

export async function tempDir(prefix: string): Promise<Made> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { path: dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
