// The L7 redirect end to end: a policy verdict `redirect` (from the NetworkPolicy redirect annotation)
// hands the flow to a real Envoy in the node namespace, on its transparent listener, with the original
// destination kept (bpf_sk_assign at tc ingress + the to-proxy policy route). Envoy proxies it to that
// destination (an original_dst cluster) and logs both ends: the source is the pod's own address. Traffic
// to other ports never reaches Envoy.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { RingBuffer } from '../../src/datapath/bpfObject.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { DEFAULT_MARKS } from '../../src/datapath/policy.js';
import { installProxyRouting, removeProxyRouting } from '../../src/datapath/proxyRouting.js';
import { REDIRECT_ANNOTATION } from '../../src/policy/translate.js';
import { ensureEnvoy } from '../helpers/envoy.js';
import { describeKernel, kernelSuite, type Made, removeAll, tempDir } from './helpers.js';
import {
  namespaceObject,
  networkPolicy,
  type PodSpec,
  type PolicyWorld,
  startPolicyWorld,
} from './policyWorld.js';

const PROXY_PORT = 15001;
const CLIENT = '10.78.1.10';
const SERVER = '10.78.1.20';
const pods: PodSpec[] = [
  { namespace: 'x', name: 'client', labels: { app: 'client' }, address: CLIENT, tcp: [], udp: [] },
  {
    namespace: 'x',
    name: 'server',
    labels: { app: 'server' },
    address: SERVER,
    tcp: [8080, 8081, 9090, 9091],
    udp: [],
  },
];

interface AccessLog {
  listener: string;
  downstream_remote: string;
  downstream_local: string;
  upstream_host: string;
}

/** A static Envoy: one transparent listener on loopback (tcp_proxy to an original_dst cluster). */
function bootstrap(dir: string): unknown {
  return {
    node: { id: 'redirect-test', cluster: 'skein-test' },
    admin: { address: { pipe: { path: path.join(dir, 'admin.sock') } } },
    static_resources: {
      listeners: [
        {
          name: 'skein_redirect',
          // The wildcard address: for a listener bound to one address Envoy takes that as every accepted
          // connection's local address; for the wildcard it asks the socket (getsockname), which holds the
          // original destination. The datapath finds the listener by the proxy port on loopback, which
          // matches a wildcard listener too.
          address: { socket_address: { address: '0.0.0.0', port_value: PROXY_PORT } },
          // IP_TRANSPARENT: the accepted socket answers from the original destination address.
          transparent: true,
          filter_chains: [
            {
              filters: [
                {
                  // bpf_sk_assign rewrites nothing: the accepted socket's local address is the original
                  // destination. Without NAT there is no SO_ORIGINAL_DST to restore it from, so it is
                  // handed to the original_dst cluster through filter state.
                  name: 'envoy.filters.network.set_filter_state',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.set_filter_state.v3.Config',
                    on_new_connection: [
                      {
                        object_key: 'envoy.network.transport_socket.original_dst_address',
                        format_string: {
                          text_format_source: { inline_string: '%DOWNSTREAM_LOCAL_ADDRESS%' },
                        },
                      },
                    ],
                  },
                },
                {
                  name: 'envoy.filters.network.tcp_proxy',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
                    stat_prefix: 'redirect',
                    cluster: 'original_dst',
                    access_log: [
                      {
                        name: 'envoy.access_loggers.file',
                        typed_config: {
                          '@type':
                            'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
                          path: path.join(dir, 'access.log'),
                          log_format: {
                            json_format: {
                              listener: 'skein_redirect',
                              downstream_remote: '%DOWNSTREAM_REMOTE_ADDRESS%',
                              downstream_local: '%DOWNSTREAM_LOCAL_ADDRESS%',
                              upstream_host: '%UPSTREAM_HOST%',
                            },
                          },
                        },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [
        {
          name: 'original_dst',
          type: 'ORIGINAL_DST',
          lb_policy: 'CLUSTER_PROVIDED',
          connect_timeout: '1s',
          // The proxy's upstream connections carry the from-proxy mark: the receiver's ingress policy was
          // decided before the redirect.
          upstream_bind_config: {
            source_address: { address: '0.0.0.0', port_value: 0 },
            socket_options: [
              { level: 1, name: 36, int_value: DEFAULT_MARKS.fromProxy, state: 'STATE_PREBIND' },
            ],
          },
        },
      ],
    },
  };
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

describeKernel(kernelSuite('L7 redirect to a real Envoy (bpf_sk_assign, original destination kept)'), () => {
  let w: PolicyWorld;
  let dir: Made | undefined;
  let envoy: ChildProcess | undefined;
  let flows: RingBuffer<FlowEvent>;
  let adminSocket = '';
  const routing = { mark: DEFAULT_MARKS.toProxy, mask: DEFAULT_MARKS.mask };

  const stat = async (name: string): Promise<number> => {
    const m = new RegExp(`^${name.replace(/\./g, '\\.')}: (\\d+)$`, 'm').exec(
      await admin(adminSocket, '/stats'),
    );
    return Number(m?.[1] ?? 0);
  };
  const accessLog = async (): Promise<AccessLog[]> =>
    (await readFile(path.join(dir?.path ?? '', 'access.log'), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as AccessLog);

  beforeAll(async () => {
    const found = await ensureEnvoy();
    w = await startPolicyWorld(pods, [namespaceObject('x')], { nodeAddress: '10.78.0.1' });
    flows = w.dp.flows();
    dir = await tempDir('skein-redirect-');
    adminSocket = path.join(dir.path, 'admin.sock');
    const file = path.join(dir.path, 'bootstrap.json');
    await writeFile(file, JSON.stringify(bootstrap(dir.path)));
    await installProxyRouting({ netns: w.node.path, ...routing });
    // Envoy runs in the node's namespace: its listener is where the pods' traffic is delivered.
    envoy = spawn(
      'nsenter',
      [
        `--net=${w.node.path}`,
        '--',
        found.path,
        '-c',
        file,
        '--disable-hot-restart',
        '--concurrency',
        '1',
        '-l',
        'warning',
        '--file-flush-interval-msec',
        '100',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    envoy.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    let ready = '';
    for (let i = 0; i < 100 && ready.trim() !== 'LIVE'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await admin(adminSocket, '/ready').catch(() => '');
    }
    if (ready.trim() !== 'LIVE') throw new Error(`Envoy did not become ready: ${stderr}`);
  }, 120_000);

  afterAll(async () => {
    if (envoy?.pid !== undefined && envoy.exitCode === null) {
      const exited = new Promise((r) => envoy?.on('exit', r));
      envoy.kill('SIGTERM');
      const t = setTimeout(() => envoy?.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    flows?.close();
    if (w !== undefined) await removeProxyRouting({ netns: w.node.path, ...routing });
    await w?.stop();
    await removeAll([dir]);
  });

  it('hands only the redirected ports to Envoy, which sees the pod as the source and the original destination', async () => {
    const { ir } = await w.apply([
      // The client's egress to 8080 goes through Envoy (an egress redirect, decided at the client).
      networkPolicy(
        'x',
        'client-l7',
        { podSelector: { matchLabels: { app: 'client' } }, policyTypes: ['Egress'], egress: [{}] },
        { [REDIRECT_ANNOTATION]: '8080' },
      ),
      // The server's ingress on 9090 goes through Envoy too (an ingress redirect, decided at the local
      // sender's interface, where the packet can still be handed over).
      networkPolicy(
        'x',
        'server-l7',
        {
          podSelector: { matchLabels: { app: 'server' } },
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { app: 'client' } } }],
              ports: [{ port: 8080 }, { port: 8081 }, { port: 9090 }, { port: 9091 }],
            },
          ],
        },
        { [REDIRECT_ANNOTATION]: '9090' },
      ),
    ]);
    const client = ir.endpoints.find((e) => e.name === 'x/client');
    expect(client?.egress.rules).toEqual([
      { peers: 'any', ports: [], verdict: 'allow', origin: 'NetworkPolicy/x/client-l7 egress[0]' },
      {
        peers: 'any',
        ports: [{ protocol: 'TCP', port: 8080 }],
        verdict: 'redirect',
        proxyPort: PROXY_PORT,
        origin: `NetworkPolicy/x/client-l7 egress[0] (${REDIRECT_ANNOTATION})`,
      },
    ]);
    flows.consume();
    const before = await stat('listener.0.0.0.0_15001.downstream_cx_total');
    expect(before).toBe(0);

    const targets = [8080, 9090, 8081, 9091].map((port) => ({ proto: 'tcp' as const, host: SERVER, port }));
    const results = await w.probe('x/client', targets, 3000);
    expect(results).toEqual(targets.map(() => ({ ok: true, reply: 'server:hi' })));

    // Envoy saw exactly the two redirected connections, each from the client pod's own address, to the
    // server's address and port as the client asked.
    expect(await stat('listener.0.0.0.0_15001.downstream_cx_total')).toBe(2);
    expect(await stat('cluster.original_dst.upstream_cx_total')).toBe(2);
    let log: AccessLog[] = [];
    for (let i = 0; i < 50 && log.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 100));
      log = await accessLog();
    }
    const sorted = [...log].sort((a, b) => a.downstream_local.localeCompare(b.downstream_local));
    expect(sorted).toHaveLength(2);
    expect(sorted.map((l) => l.downstream_local)).toEqual([`${SERVER}:8080`, `${SERVER}:9090`]);
    expect(sorted.map((l) => l.upstream_host)).toEqual([`${SERVER}:8080`, `${SERVER}:9090`]);
    for (const l of sorted)
      expect(l.downstream_remote).toMatch(new RegExp(`^${CLIENT.replace(/\./g, '\\.')}:\\d+$`));

    const events: FlowEvent[] = [];
    for (
      let i = 0;
      i < 20 && events.filter((e) => e.verdict === 'redirect' && e.reason === 'policyRedirect').length < 2;
      i++
    ) {
      events.push(...(await flows.poll(100)));
    }
    const redirects = events.filter((e) => e.reason === 'policyRedirect');
    expect(redirects.map((e) => e.originalDestinationPort).sort()).toEqual([8080, 9090]);
    for (const e of redirects) {
      expect(e).toMatchObject({
        verdict: 'redirect',
        source: CLIENT,
        destination: SERVER,
        destinationPort: PROXY_PORT,
      });
    }
    // The proxy's upstream connection into the isolated server passed as the proxy's own.
    expect(events.some((e) => e.reason === 'fromProxy' && e.destinationPort === 9090)).toBe(true);
    // The ports that were not redirected went straight to the server.
    expect(
      events
        .filter((e) => e.originalDestinationPort === 8081 || e.originalDestinationPort === 9091)
        .map((e) => e.verdict),
    ).not.toContain('redirect');
  });

  it('redirects each new connection again, and fails closed once Envoy is gone', async () => {
    const results = await w.probe('x/client', [{ proto: 'tcp', host: SERVER, port: 8080 }], 3000);
    expect(results).toEqual([{ ok: true, reply: 'server:hi' }]);
    expect(await stat('listener.0.0.0.0_15001.downstream_cx_total')).toBe(3);
    const exited = new Promise((r) => envoy?.on('exit', r));
    envoy?.kill('SIGTERM');
    await exited;
    flows.consume();
    // Without its proxy, a redirected flow fails closed: dropped, with the reason.
    expect(
      await w.probe(
        'x/client',
        [
          { proto: 'tcp', host: SERVER, port: 8080 },
          { proto: 'tcp', host: SERVER, port: 8081 },
        ],
        1000,
      ),
    ).toEqual([
      { ok: false, code: 'TIMEOUT' },
      { ok: true, reply: 'server:hi' },
    ]);
    const drops: FlowEvent[] = [];
    for (let i = 0; i < 20 && drops.length === 0; i++)
      drops.push(...(await flows.poll(100)).filter((e) => e.reason === 'proxyUnavailable'));
    expect(drops[0]).toMatchObject({ verdict: 'drop', originalDestinationPort: 8080, source: CLIENT });
  });
});
