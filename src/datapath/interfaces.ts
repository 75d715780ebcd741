/**
 * What the node's network looks like, read with iproute2 (`ip -j`): interface indexes by name, and the
 * host-side interface of each pod address (the /32 and /128 routes a CNI makes to its veths). Runs in the
 * given network namespace (a /run/netns/NAME or /proc/PID/ns/net path) or in this process's.
 */

import { execFile } from 'node:child_process';

/** Runs `ip ARGS`, in `netns` if given (through nsenter, which only needs the path). */
export function ip(args: readonly string[], netns?: string, timeoutMs = 10_000): Promise<string> {
  const [cmd, argv] =
    netns === undefined ? ['ip', [...args]] : ['nsenter', [`--net=${netns}`, '--', 'ip', ...args]];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ip ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/** Every interface's index, by name. */
export async function interfaceIndexes(netns?: string): Promise<Map<string, number>> {
  const links = JSON.parse(await ip(['-j', 'link', 'show'], netns)) as { ifindex: number; ifname: string }[];
  return new Map(links.map((l) => [l.ifname, l.ifindex]));
}

/**
 * The interface each host route (/32, /128) leads to, by address: where a chained CNI's pods are. Routes
 * over loopback and routes through a gateway are not pods of this node.
 */
export async function podInterfaces(netns?: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const family of ['-4', '-6']) {
    const routes = JSON.parse(await ip(['-j', family, 'route', 'show', 'table', 'main'], netns)) as {
      dst?: string;
      dev?: string;
      gateway?: string;
    }[];
    for (const r of routes) {
      if (r.dst === undefined || r.dev === undefined || r.dev === 'lo' || r.gateway !== undefined) continue;
      const host = r.dst.includes('/')
        ? /\/(32|128)$/.test(r.dst)
          ? r.dst.split('/')[0]
          : undefined
        : r.dst;
      if (host !== undefined && host !== 'default') out.set(host, r.dev);
    }
  }
  return out;
}

/**
 * The interface the node would send each address out of, as `ip route get ADDR` answers it (one
 * `ip -batch` run for all): how a chained agent finds a pod's host-side interface whatever route the CNI
 * made (a /32 to the veth, a route in another table). An address whose route is local, goes through a
 * gateway or has no route at all is not a pod of this node and is left out.
 */
export async function routeInterfaces(
  addresses: readonly string[],
  netns?: string,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (addresses.length === 0) return out;
  const text = await ipBatch(
    addresses.map((a) => `route get ${a}`),
    netns,
  );
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    for (const r of JSON.parse(line) as { dst?: string; dev?: string; gateway?: string; type?: string }[]) {
      if (r.dst === undefined || r.dev === undefined || r.dev === 'lo' || r.gateway !== undefined) continue;
      if (r.type !== undefined && r.type !== 'unicast') continue;
      out.set(r.dst, r.dev);
    }
  }
  return out;
}

/** `ip -j -force -batch -`: every command, JSON lines; a failing command (no route) is skipped, not fatal. */
function ipBatch(commands: readonly string[], netns?: string, timeoutMs = 10_000): Promise<string> {
  const args = ['-j', '-force', '-batch', '-'];
  const [cmd, argv] =
    netns === undefined ? ['ip', args] : ['nsenter', [`--net=${netns}`, '--', 'ip', ...args]];
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      argv,
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        // -force: the exit status is 1 when some command failed; what succeeded is on stdout.
        if (err && stdout === '') reject(new Error(`ip -batch failed: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    child.stdin?.end(`${commands.join('\n')}\n`);
  });
}

/** Whether some socket listens on TCP `port` (any address), in `netns` or this process's namespace. */
export function tcpListening(port: number, netns?: string, timeoutMs = 5_000): Promise<boolean> {
  const args = ['-H', '-l', '-t', '-n', 'sport', '=', `:${port}`];
  const [cmd, argv] =
    netns === undefined ? ['ss', args] : ['nsenter', [`--net=${netns}`, '--', 'ss', ...args]];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`ss failed: ${stderr.trim() || err.message}`));
      else resolve(stdout.trim() !== '');
    });
  });
}
