// Helpers for the tests that run Skein against the real API server: real backends inside a network
// namespace (the API server refuses loopback EndpointSlice addresses), HTTP requests through Envoy, and
// Kubernetes objects written with client-node (an independent client, not Skein's own).

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import {
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from '@kubernetes/client-node';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const SKEIN_BIN = path.join(ROOT, 'bin/skein');

function exec(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

export interface NetnsBackends {
  /** The backends' address: inside the namespace, reachable from the host over a veth pair. */
  readonly address: string;
  /** Port of each backend by name (they answer with their name in `x-backend` and the JSON body). */
  readonly ports: Readonly<Record<string, number>>;
  stop(): Promise<void>;
}

/**
 * Echo backends (`skein echo`) in a network namespace of their own, on an address in 198.18.0.0/15
 * (the benchmarking range, RFC 2544: not loopback, so an EndpointSlice may hold it, and not routed
 * anywhere else) at the far end of a veth pair. Names are random: other engineers' tests run alongside.
 * stop() ends the process by pid and deletes the link and the namespace.
 */
export async function startNetnsBackends(names: readonly string[]): Promise<NetnsBackends> {
  const tag = randomBytes(4).toString('hex');
  const netns = `skein-kt-${tag}`;
  const hostLink = `sk${tag}h`;
  const nsLink = `sk${tag}n`;
  const used = await exec('ip', ['-o', '-4', 'addr', 'show']);
  let a = 0;
  let b = 0;
  for (let i = 0; i < 20; i++) {
    a = randomInt(18, 20);
    b = randomInt(0, 256);
    if (!used.includes(` 198.${a}.${b}.`)) break;
  }
  const c = randomInt(0, 64) * 4;
  const hostIp = `198.${a}.${b}.${c + 1}`;
  const address = `198.${a}.${b}.${c + 2}`;
  const ports: Record<string, number> = {};
  names.forEach((n, i) => {
    ports[n] = 8080 + i;
  });
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const stop = async (): Promise<void> => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    await exec('ip', ['link', 'del', hostLink]).catch(() => undefined);
    await exec('ip', ['netns', 'del', netns]).catch(() => undefined);
  };
  try {
    await exec('ip', ['netns', 'add', netns]);
    await exec('ip', ['link', 'add', hostLink, 'type', 'veth', 'peer', 'name', nsLink, 'netns', netns]);
    await exec('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostLink]);
    await exec('ip', ['link', 'set', hostLink, 'up']);
    await exec('ip', ['-n', netns, 'addr', 'add', `${address}/30`, 'dev', nsLink]);
    await exec('ip', ['-n', netns, 'link', 'set', nsLink, 'up']);
    await exec('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const listen = names.flatMap((n) => ['--listen', `${n}=${address}:${ports[n]}`]);
    child = spawn(
      'nsenter',
      [`--net=/run/netns/${netns}`, '--', process.execPath, SKEIN_BIN, 'echo', ...listen],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    const proc = child;
    let stderr = '';
    proc.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    // Up when every backend answers from the host side.
    const deadline = Date.now() + 15_000;
    for (const n of names) {
      for (;;) {
        if (proc.exitCode !== null) throw new Error(`the echo backends exited: ${stderr}`);
        const r = await get(address, ports[n] ?? 0, 'probe').catch(() => undefined);
        if (r?.backend === n) break;
        if (Date.now() > deadline)
          throw new Error(`echo backend ${n} on ${address} did not answer: ${stderr}`);
        await new Promise((r2) => setTimeout(r2, 100));
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { address, ports, stop };
}

export interface Reply {
  readonly status: number;
  /** The echo backend that answered (its `x-backend` header), if one did. */
  readonly backend: string | undefined;
  readonly body: string;
}

/** One HTTP/1.1 request, no connection reuse, bounded to 3 s. */
export function get(address: string, port: number, host: string, urlPath = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: address, port, path: urlPath, headers: { host }, agent: false, timeout: 3000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('error', reject);
        res.on('end', () => {
          const b = res.headers['x-backend'];
          resolve({ status: res.statusCode ?? 0, backend: typeof b === 'string' ? b : undefined, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Objects through client-node: server-side apply (create or update), merge patch, delete, read. */
export class TestObjects {
  readonly api: KubernetesObjectApi;

  constructor(kc: KubeConfig) {
    this.api = KubernetesObjectApi.makeApiClient(kc);
  }

  apply<T extends KubernetesObject>(o: T): Promise<T> {
    return this.api.patch(o, undefined, undefined, 'skein-test', true, PatchStrategy.ServerSideApply);
  }

  async applyAll(list: readonly KubernetesObject[]): Promise<void> {
    for (const o of list) await this.apply(o);
  }

  read<T extends KubernetesObject>(o: KubernetesObject): Promise<T> {
    return this.api.read(o as T & { metadata: { name: string } }) as Promise<T>;
  }

  async delete(o: KubernetesObject): Promise<void> {
    await this.api.delete(o);
  }
}

/** A random loopback address other than 127.0.0.1, for the listeners of one test file. */
export function loopback(): string {
  return `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
}

// ---------------------------------------------------------------------------------------------------
// Objects

export const GATEWAY_CONTROLLER = 'skein.io/gateway-controller';
export const INGRESS_CONTROLLER = 'skein.io/ingress-controller';

export function gatewayClass(name: string): KubernetesObject & Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'GatewayClass',
    metadata: { name },
    spec: { controllerName: GATEWAY_CONTROLLER },
  };
}

export function gateway(
  namespace: string,
  name: string,
  opts: { className: string; address: string; port: number; hostname?: string },
): KubernetesObject & Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace },
    spec: {
      gatewayClassName: opts.className,
      addresses: [{ type: 'IPAddress', value: opts.address }],
      listeners: [
        {
          name: 'http',
          protocol: 'HTTP',
          port: opts.port,
          ...(opts.hostname === undefined ? {} : { hostname: opts.hostname }),
        },
      ],
    },
  };
}

export function httpRoute(
  namespace: string,
  name: string,
  opts: {
    gateway: string;
    hostname: string;
    rules: readonly { path?: string; backend: string; port?: number }[];
  },
): KubernetesObject & Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec: {
      parentRefs: [{ name: opts.gateway }],
      hostnames: [opts.hostname],
      rules: opts.rules.map((r) => ({
        ...(r.path === undefined ? {} : { matches: [{ path: { type: 'PathPrefix', value: r.path } }] }),
        backendRefs: [{ name: r.backend, port: r.port ?? 80 }],
      })),
    },
  };
}

/** A Service (port 80 → targetPort) and its EndpointSlice with one ready endpoint. */
export function service(
  namespace: string,
  name: string,
  endpoint: { address: string; port: number },
): (KubernetesObject & Record<string, unknown>)[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { ports: [{ name: 'http', port: 80, targetPort: endpoint.port, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: endpoint.port, protocol: 'TCP' }],
      endpoints: [{ addresses: [endpoint.address], conditions: { ready: true } }],
    },
  ];
}

export function namespaceObject(name: string): KubernetesObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

/** The condition of `type` in a conditions list. */
export function conditionOf(
  conditions: unknown,
  type: string,
): { status: string; reason: string; message: string; observedGeneration?: number } | undefined {
  if (!Array.isArray(conditions)) return undefined;
  return conditions.find((c: { type?: string }) => c.type === type);
}

export interface CuttableProxy {
  /** `https://127.0.0.1:<port>`: the API server, through the proxy. */
  readonly server: string;
  /** Drops every connection through the proxy, and every new one until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of the API server that a test can cut: a network partition between one client
 * and the API server, with the API server itself untouched (TLS passes through; the serving
 * certificate is for 127.0.0.1, where the proxy listens too).
 */
export async function startCuttableProxy(target: string): Promise<CuttableProxy> {
  const url = new URL(target);
  const sockets = new Set<import('node:net').Socket>();
  let cut = false;
  const net = await import('node:net');
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(url.port), url.hostname);
    sockets.add(client);
    sockets.add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as import('node:net').AddressInfo).port;
  return {
    server: `https://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
