import dgram from 'node:dgram';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, h2cBackend, http1Backend } from '../helpers/backend.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { createTestCa, type TestCa } from '../helpers/pki.js';
import { GATEWAY_CLASS_YAML, serviceYaml, startTestSkein, type TestSkein } from '../helpers/standalone.js';

/**
 * The route kinds beyond HTTPRoute, end to end with a real Envoy and real backends on loopback:
 * GRPCRoute to gRPC servers (h2c: exact and regular-expression method matches, a filter, weights with an
 * invalid share), TLSRoute passthrough to TLS servers chosen by SNI, TCPRoute and UDPRoute to echo
 * servers (weighted, and an invalid backend's share refused), an HTTPRoute to an h2c backend,
 * BackendTLSPolicy to an HTTPS server (CA and SAN checks), and a cross-namespace backendRef with and
 * without a ReferenceGrant. One Skein and Envoy per describe.
 */

const GW = 'gateway.networking.k8s.io';

function gatewayYaml(address: string, listeners: string): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: ${GW}/v1
kind: Gateway
metadata: { name: edge, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
${listeners
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

// ---------------------------------------------------------------------------------------------------
// gRPC

interface SayReply {
  message: string;
  backend: string;
}

const packageDef = protoLoader.loadSync(path.join(import.meta.dirname, '../fixtures/echo.proto'));
const proto = grpc.loadPackageDefinition(packageDef) as unknown as {
  skein: { test: { Echo: grpc.ServiceClientConstructor } };
};
const say = proto.skein.test.Echo.service['Say'] as grpc.MethodDefinition<{ message: string }, SayReply>;

/** The paths the gRPC backends answer, all with Say's messages: enough to tell method matching apart. */
const METHODS = [
  '/skein.test.Echo/Say',
  '/skein.test.Echo/SayAgain',
  '/other.Greeter/Say',
  '/regex.Svc1/GetThing',
  '/regex.Svc1/PutThing',
  '/filtered.Svc/Call',
  '/weighted.Svc/Call',
] as const;

/** Metadata a GRPCRoute filter adds; the backends echo it back in their message. */
const FILTER_HEADER = 'x-grpc-filter';

async function startGrpcBackend(name: string): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  const definition: Record<string, grpc.MethodDefinition<{ message: string }, SayReply>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const [i, p] of METHODS.entries()) {
    definition[`m${i}`] = { ...say, path: p, originalName: `m${i}` };
    handlers[`m${i}`] = (
      call: grpc.ServerUnaryCall<{ message: string }, SayReply>,
      cb: grpc.sendUnaryData<SayReply>,
    ) => {
      const added = call.metadata.get(FILTER_HEADER);
      const extra = added.length > 0 ? ` [${FILTER_HEADER}=${added.join(',')}]` : '';
      cb(null, { message: `${p} ${call.request.message}${extra}`, backend: name });
    };
  }
  server.addService(definition, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  return { port, server };
}

function call(
  client: grpc.Client,
  method: string,
  message: string,
  metadata: Record<string, string> = {},
): Promise<SayReply> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      method,
      say.requestSerialize,
      say.responseDeserialize,
      { message },
      md,
      { deadline: Date.now() + 5000 },
      (err, res) => (err || res === undefined ? reject(err) : resolve(res)),
    );
  });
}

function grpcRouteYaml(): string {
  return `apiVersion: ${GW}/v1
kind: GRPCRoute
metadata: { name: echo, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    # Exact service and method.
    - matches: [{ method: { service: skein.test.Echo, method: SayAgain } }]
      backendRefs: [{ name: v2, port: 50051 }]
    # The service, any method; with a header it goes to v2 (more header matches win).
    - matches: [{ method: { service: skein.test.Echo } }]
      backendRefs: [{ name: v1, port: 50051 }]
    - matches: [{ method: { service: skein.test.Echo }, headers: [{ name: x-pick, value: v2 }] }]
      backendRefs: [{ name: v2, port: 50051 }]
    # The method, any service: /skein.test.Echo/Say matches the service rule first (more characters).
    - matches: [{ method: { method: Say } }]
      backendRefs: [{ name: v2, port: 50051 }]
`;
}

/** A second GRPCRoute on the same listener: a regular-expression method match, a filter, weights. */
function grpcExtrasYaml(): string {
  return `apiVersion: ${GW}/v1
kind: GRPCRoute
metadata: { name: extras, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - matches: [{ method: { type: RegularExpression, service: "regex\\\\.Svc[0-9]+", method: "Get.*" } }]
      backendRefs: [{ name: v2, port: 50051 }]
    - matches: [{ method: { service: filtered.Svc } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { add: [{ name: ${FILTER_HEADER}, value: added }] }
      backendRefs: [{ name: v1, port: 50051 }]
    # Half the weight belongs to a Service that does not exist: those calls fail with UNAVAILABLE.
    - matches: [{ method: { service: weighted.Svc } }]
      backendRefs:
        - { name: v1, port: 50051, weight: 1 }
        - { name: v2, port: 50051, weight: 1 }
        - { name: missing, port: 50051, weight: 2 }
`;
}

/** The outcome of one call: the backend that answered, or the gRPC status name of the failure. */
async function outcome(client: grpc.Client, method: string): Promise<string> {
  try {
    return (await call(client, method, 'w')).backend;
  } catch (e) {
    return grpc.status[(e as grpc.ServiceError).code] ?? String(e);
  }
}

describe('GRPCRoute through Envoy to real gRPC backends (h2c)', () => {
  let skein: TestSkein;
  let backends: { name: string; port: number; server: grpc.Server }[];
  let client: grpc.Client;

  beforeAll(async () => {
    backends = [
      { name: 'v1', ...(await startGrpcBackend('v1')) },
      { name: 'v2', ...(await startGrpcBackend('v2')) },
    ];
    const address = randomLoopback();
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: http, protocol: HTTP, port: 8080 }'),
        // v1's port says nothing about its protocol: a GRPCRoute speaks h2c to it all the same.
        'backends.yaml': [
          serviceYaml({
            name: 'v1',
            port: 50051,
            endpoints: [{ host: '127.0.0.1', port: backends[0]?.port ?? 0 }],
          }),
          serviceYaml({
            name: 'v2',
            port: 50051,
            appProtocol: 'kubernetes.io/h2c',
            endpoints: [{ host: '127.0.0.1', port: backends[1]?.port ?? 0 }],
          }),
        ].join('---\n'),
        'route.yaml': grpcRouteYaml(),
        'extras.yaml': grpcExtrasYaml(),
      },
    });
    client = new grpc.Client(`${address}:8080`, grpc.credentials.createInsecure());
    await waitFor('the GRPCRoute to serve', () => call(client, METHODS[0], 'hi'), 20_000, 100);
    await waitFor(
      'the second GRPCRoute to serve',
      () => call(client, '/filtered.Svc/Call', 'hi'),
      20_000,
      100,
    );
  }, 60_000);

  afterAll(async () => {
    client?.close();
    for (const b of backends ?? []) b.server.forceShutdown();
    await skein?.stop();
  });

  it('routes by service and method, exact and partial, and by header', async () => {
    expect(await call(client, '/skein.test.Echo/Say', 'a')).toEqual({
      message: '/skein.test.Echo/Say a',
      backend: 'v1',
    });
    expect((await call(client, '/skein.test.Echo/SayAgain', 'b')).backend).toBe('v2');
    expect((await call(client, '/other.Greeter/Say', 'c')).backend).toBe('v2');
    expect((await call(client, '/skein.test.Echo/Say', 'd', { 'x-pick': 'v2' })).backend).toBe('v2');
  });

  it('matches service and method by regular expression, each in full', async () => {
    expect(await call(client, '/regex.Svc1/GetThing', 'r')).toEqual({
      message: '/regex.Svc1/GetThing r',
      backend: 'v2',
    });
    // PutThing is not Get.*, and regex.Svc1 is not matched by a prefix of the pattern: no rule, no backend.
    await expect(call(client, '/regex.Svc1/PutThing', 'r')).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
    });
  });

  it('applies a RequestHeaderModifier filter to the calls of its rule only', async () => {
    expect(await call(client, '/filtered.Svc/Call', 'f')).toEqual({
      message: `/filtered.Svc/Call f [${FILTER_HEADER}=added]`,
      backend: 'v1',
    });
    expect((await call(client, '/skein.test.Echo/Say', 'g')).message).toBe('/skein.test.Echo/Say g');
  });

  it("splits calls by weight, and fails the invalid backend's share with UNAVAILABLE", async () => {
    const counts = new Map<string, number>();
    // 80 calls, weights 1:1:2 (the 2 invalid): about 20 / 20 / 40. The bounds are 4.5 standard
    // deviations wide, so a correct split fails them with a chance of about 1 in 100,000.
    for (let i = 0; i < 80; i++) {
      const o = await outcome(client, '/weighted.Svc/Call');
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['UNAVAILABLE', 'v1', 'v2']);
    expect(counts.get('UNAVAILABLE')).toBeGreaterThanOrEqual(20);
    expect(counts.get('UNAVAILABLE')).toBeLessThanOrEqual(60);
  });

  it('answers a call no rule matches with UNIMPLEMENTED (Envoy 404), not a backend', async () => {
    await expect(call(client, '/nobody.Knows/This', 'e')).rejects.toMatchObject({
      code: grpc.status.UNIMPLEMENTED,
    });
  });

  it('fails calls with UNAVAILABLE when the rule has no valid backend', async () => {
    await skein.write(
      'route.yaml',
      `${grpcRouteYaml()}    - matches: [{ method: { service: gone.Svc } }]
      backendRefs: [{ name: missing, port: 50051 }]
`,
    );
    const err = await waitFor(
      'the new rule',
      async () => {
        try {
          await call(client, '/gone.Svc/Say', 'f');
          return undefined;
        } catch (e) {
          return (e as grpc.ServiceError).code === grpc.status.UNIMPLEMENTED
            ? undefined
            : (e as grpc.ServiceError);
        }
      },
      10_000,
      50,
    );
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });
});

describe('GRPCRoute to proxyless gRPC clients (@grpc/grpc-js-xds, no Envoy)', () => {
  let skein: TestSkein;
  let backends: { name: string; port: number; server: grpc.Server }[];
  let client: grpc.Client;

  beforeAll(async () => {
    backends = [
      { name: 'v1', ...(await startGrpcBackend('v1')) },
      { name: 'v2', ...(await startGrpcBackend('v2')) },
    ];
    skein = await startTestSkein({
      envoy: false,
      files: {
        'gateway.yaml': gatewayYaml('127.0.0.1', '- { name: http, protocol: HTTP, port: 18081 }'),
        'backends.yaml': backends
          .map((b) =>
            serviceYaml({ name: b.name, port: 50051, endpoints: [{ host: '127.0.0.1', port: b.port }] }),
          )
          .join('---\n'),
        // The proxyless flavour serves concrete hostnames only (a client dials xds:///<hostname>).
        'route.yaml': grpcRouteYaml().replace(
          '  parentRefs: [{ name: edge }]\n',
          '  parentRefs: [{ name: edge }]\n  hostnames: [echo.grpc.test]\n',
        ),
      },
    });
    // grpc-js-xds reads its bootstrap from the environment when the first xds: channel is made.
    process.env['GRPC_XDS_BOOTSTRAP_CONFIG'] = JSON.stringify({
      xds_servers: [
        {
          server_uri: skein.skein.xdsAddress,
          channel_creds: [{ type: 'insecure' }],
          server_features: ['xds_v3'],
        },
      ],
      node: { id: 'route-kinds-grpc-client', cluster: 'route-kinds', locality: {} },
    });
    const xds = await import('@grpc/grpc-js-xds');
    xds.register();
    client = new grpc.Client('xds:///echo.grpc.test', grpc.credentials.createInsecure());
    await waitFor('a first call', () => call(client, METHODS[0], 'hi'), 20_000, 100);
  }, 60_000);

  afterAll(async () => {
    client?.close();
    for (const b of backends ?? []) b.server.forceShutdown();
    await skein?.stop();
  });

  it('routes by service and method, exact and partial, and by header, as Envoy does', async () => {
    expect((await call(client, '/skein.test.Echo/Say', 'a')).backend).toBe('v1');
    expect((await call(client, '/skein.test.Echo/SayAgain', 'b')).backend).toBe('v2');
    expect((await call(client, '/other.Greeter/Say', 'c')).backend).toBe('v2');
    expect((await call(client, '/skein.test.Echo/Say', 'd', { 'x-pick': 'v2' })).backend).toBe('v2');
  });
});

// ---------------------------------------------------------------------------------------------------
// TLS passthrough

async function startTlsBackend(ca: TestCa, name: string): Promise<{ server: tls.Server; port: number }> {
  const cert = ca.issue([`${name}.example.test`]);
  const server = tls.createServer({ cert: cert.certPem, key: cert.keyPem }, (socket) => {
    socket.end(`${name}:${socket.servername ?? ''}`);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

/** Connects with TLS (verifying the certificate against `ca`) and reads until the server closes. */
function tlsRead(address: string, port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: address, port, servername, ca, timeout: 5000 });
    let data = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      data += d;
    });
    socket.on('end', () => resolve(data));
    socket.on('timeout', () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
}

describe('TLSRoute: TLS passthrough to real TLS backends, chosen by SNI', () => {
  let skein: TestSkein;
  let ca: TestCa;
  let backends: { name: string; server: tls.Server; port: number }[];
  let address: string;

  beforeAll(async () => {
    ca = createTestCa();
    backends = [];
    for (const name of ['alpha', 'beta']) backends.push({ name, ...(await startTlsBackend(ca, name)) });
    address = randomLoopback();
    const routes = backends
      .map(
        (b) => `apiVersion: ${GW}/v1
kind: TLSRoute
metadata: { name: ${b.name}, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  hostnames: [${b.name}.example.test]
  rules: [{ backendRefs: [{ name: ${b.name}, port: 443 }] }]
`,
      )
      .join('---\n');
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(
          address,
          '- { name: tls, protocol: TLS, port: 8443, tls: { mode: Passthrough } }',
        ),
        'backends.yaml': backends
          .map((b) =>
            serviceYaml({ name: b.name, port: 443, endpoints: [{ host: '127.0.0.1', port: b.port }] }),
          )
          .join('---\n'),
        'routes.yaml': routes,
      },
    });
    await waitFor(
      'the TLS listener',
      () => tlsRead(address, 8443, 'alpha.example.test', ca.certPem),
      20_000,
      100,
    );
  }, 60_000);

  afterAll(async () => {
    for (const b of backends ?? []) b.server.close();
    await skein?.stop();
  });

  it('sends each SNI to its backend, whose own certificate the client verifies (the bytes pass through)', async () => {
    expect(await tlsRead(address, 8443, 'alpha.example.test', ca.certPem)).toBe('alpha:alpha.example.test');
    expect(await tlsRead(address, 8443, 'beta.example.test', ca.certPem)).toBe('beta:beta.example.test');
  });

  it('closes a connection whose SNI no route takes, before the TLS handshake completes', async () => {
    // Envoy finds no filter chain for the ClientHello's SNI and resets the connection.
    await expect(tlsRead(address, 8443, 'gamma.example.test', ca.certPem)).rejects.toMatchObject({
      code: 'ECONNRESET',
      syscall: 'read',
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// TCP and UDP

async function startTcpEcho(name: string): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer((socket) => {
    socket.on('data', (d) => socket.write(`${name}:${d.toString()}`));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

function tcpRoundTrip(address: string, port: number, message: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port, timeout: 5000 }, () => socket.write(message));
    socket.setEncoding('utf8');
    socket.once('data', (d: string) => {
      resolve(d);
      socket.destroy();
    });
    socket.on('end', () => reject(new Error('closed without an answer')));
    socket.on('timeout', () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
}

describe('TCPRoute to a real TCP echo server', () => {
  let skein: TestSkein;
  let echo: { server: net.Server; port: number };
  let address: string;

  beforeAll(async () => {
    echo = await startTcpEcho('tcp-echo');
    address = randomLoopback();
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: tcp, protocol: TCP, port: 9000 }'),
        'backends.yaml': serviceYaml({
          name: 'echo',
          port: 7000,
          endpoints: [{ host: '127.0.0.1', port: echo.port }],
        }),
        'route.yaml': `apiVersion: ${GW}/v1alpha2
kind: TCPRoute
metadata: { name: echo, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: tcp }]
  rules: [{ backendRefs: [{ name: echo, port: 7000 }] }]
`,
      },
    });
    await waitFor('the TCP listener', () => tcpRoundTrip(address, 9000, 'ping'), 20_000, 100);
  }, 60_000);

  afterAll(async () => {
    echo?.server.close();
    await skein?.stop();
  });

  it('forwards the bytes of a connection both ways', async () => {
    expect(await tcpRoundTrip(address, 9000, 'hello over tcp')).toBe('tcp-echo:hello over tcp');
  });
});

/** How one TCP connection ended: the echo of the backend that answered, or refused (closed, or reset). */
function tcpOutcome(address: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port }, () => socket.write('ping'));
    let answered = false;
    const timer = setTimeout(() => socket.destroy(new Error('no answer and no close in 5 s')), 5_000);
    socket.setEncoding('utf8');
    socket.once('data', (d: string) => {
      answered = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(d);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (!answered) resolve('refused');
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // A close with the ping unread is a reset: refused too. Anything else is named as it is.
      if (!answered)
        resolve(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'refused' : `error ${e.message}`);
    });
  });
}

describe('TCPRoute with weighted backends and an invalid one', () => {
  let skein: TestSkein;
  let echoes: { server: net.Server; port: number }[];
  let address: string;

  beforeAll(async () => {
    echoes = [await startTcpEcho('a'), await startTcpEcho('b')];
    address = randomLoopback();
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: tcp, protocol: TCP, port: 9100 }'),
        'backends.yaml': echoes
          .map((e, i) =>
            serviceYaml({
              name: `echo-${'ab'[i]}`,
              port: 7000,
              endpoints: [{ host: '127.0.0.1', port: e.port }],
            }),
          )
          .join('---\n'),
        'route.yaml': `apiVersion: ${GW}/v1alpha2
kind: TCPRoute
metadata: { name: split, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
    - backendRefs:
        - { name: echo-a, port: 7000, weight: 1 }
        - { name: echo-b, port: 7000, weight: 1 }
        - { name: echo-missing, port: 7000, weight: 2 }
`,
      },
    });
    await waitFor(
      'the TCP listener to forward',
      async () => ((await tcpOutcome(address, 9100)) === 'refused' ? undefined : true),
      20_000,
      100,
    );
  }, 60_000);

  afterAll(async () => {
    for (const e of echoes ?? []) e.server.close();
    await skein?.stop();
  });

  it("splits connections by weight and refuses the invalid backend's share", async () => {
    const counts = new Map<string, number>();
    // 80 connections, weights 1:1:2 (the 2 invalid): about 20 / 20 / 40, within 4.5 standard deviations.
    for (let i = 0; i < 80; i++) {
      const o = await tcpOutcome(address, 9100);
      counts.set(o, (counts.get(o) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).toEqual(['a:ping', 'b:ping', 'refused']);
    expect(counts.get('refused')).toBeGreaterThanOrEqual(20);
    expect(counts.get('refused')).toBeLessThanOrEqual(60);
  });
});

async function startUdpEcho(name: string): Promise<{ socket: dgram.Socket; port: number }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => socket.send(`${name}:${msg.toString()}`, rinfo.port, rinfo.address));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return { socket, port: socket.address().port };
}

/** One datagram out, the first answer back, or undefined after `timeoutMs` (UDP may lose either). */
async function udpRoundTrip(
  address: string,
  port: number,
  message: string,
  timeoutMs = 500,
): Promise<string | undefined> {
  const socket = dgram.createSocket('udp4');
  try {
    const answer = new Promise<string>((resolve) => socket.once('message', (m) => resolve(m.toString())));
    socket.send(message, port, address);
    const timer = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs));
    return await Promise.race([answer, timer]);
  } finally {
    socket.close();
  }
}

describe('UDPRoute to a real UDP echo server', () => {
  let skein: TestSkein;
  let echo: { socket: dgram.Socket; port: number };
  let address: string;

  beforeAll(async () => {
    echo = await startUdpEcho('udp-echo');
    address = randomLoopback();
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: dns, protocol: UDP, port: 9053 }'),
        'backends.yaml': serviceYaml({
          name: 'echo',
          port: 53,
          protocol: 'UDP',
          endpoints: [{ host: '127.0.0.1', port: echo.port }],
        }),
        'route.yaml': `apiVersion: ${GW}/v1alpha2
kind: UDPRoute
metadata: { name: echo, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules: [{ backendRefs: [{ name: echo, port: 53 }] }]
`,
      },
    });
    await waitFor('the UDP listener', () => udpRoundTrip(address, 9053, 'ping'), 20_000, 50);
  }, 60_000);

  afterAll(async () => {
    echo?.socket.close();
    await skein?.stop();
  });

  it('forwards datagrams and their answers', async () => {
    const answer = await waitFor('an answer', () => udpRoundTrip(address, 9053, 'hello over udp'), 5000, 10);
    expect(answer).toBe('udp-echo:hello over udp');
  });

  it("drops the datagrams of the clients in an invalid backend's share", async () => {
    // A Gateway of its own, so that the route above (attached to every listener of edge) is not on it.
    await skein.write(
      'split.yaml',
      `apiVersion: ${GW}/v1
kind: Gateway
metadata: { name: split, namespace: default }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners: [{ name: split, protocol: UDP, port: 9054 }]
---
apiVersion: ${GW}/v1alpha2
kind: UDPRoute
metadata: { name: split, namespace: default }
spec:
  parentRefs: [{ name: split }]
  rules:
    - backendRefs:
        - { name: echo, port: 53, weight: 1 }
        - { name: missing, port: 53, weight: 1 }
`,
    );
    // The split listener is up once some client gets an answer (each try is a new client, source port).
    await waitFor('the split UDP listener', () => udpRoundTrip(address, 9054, 'up?'), 15_000, 10);
    // 40 clients, each its own source port, half the weight invalid: about 20 answered. Loopback loses
    // no datagrams, so a client without an answer in 500 ms is one whose datagrams are dropped.
    let answered = 0;
    for (let i = 0; i < 40; i++) {
      const a = await udpRoundTrip(address, 9054, `client ${i}`);
      if (a !== undefined) {
        expect(a).toBe(`udp-echo:client ${i}`);
        answered++;
      }
    }
    expect(answered).toBeGreaterThanOrEqual(6);
    expect(answered).toBeLessThanOrEqual(34);
  });
});

// ---------------------------------------------------------------------------------------------------
// BackendTLSPolicy

interface HttpsBackend {
  readonly server: https.Server;
  readonly port: number;
  /** The SNI of each TLS handshake, in order (a client without SNI does not appear). */
  readonly sni: string[];
}

async function startHttpsBackend(ca: TestCa, names: readonly string[]): Promise<HttpsBackend> {
  const cert = ca.issue(names);
  const context = tls.createSecureContext({ cert: cert.certPem, key: cert.keyPem });
  const sni: string[] = [];
  const server = https.createServer(
    {
      cert: cert.certPem,
      key: cert.keyPem,
      // Every handshake's SNI, resumed ones included (a resumed session's socket does not report it).
      SNICallback: (name, cb) => {
        sni.push(name);
        cb(null, context);
      },
    },
    (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ backend: 'https', path: req.url }));
    },
  );
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port, sni };
}

function configMapYaml(name: string, pem: string): string {
  return `apiVersion: v1
kind: ConfigMap
metadata: { name: ${name}, namespace: default }
data:
  ca.crt: |
${pem
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

function policyYaml(name: string, service: string, ca: string, extra = ''): string {
  return `apiVersion: ${GW}/v1
kind: BackendTLSPolicy
metadata: { name: ${name}, namespace: default }
spec:
  targetRefs: [{ group: "", kind: Service, name: ${service} }]
  validation:
    hostname: backend.example.test
    caCertificateRefs: [{ group: "", kind: ConfigMap, name: ${ca} }]
${extra}`;
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text() };
}

describe('BackendTLSPolicy: Envoy to a real HTTPS backend', () => {
  let skein: TestSkein;
  let backend: HttpsBackend;
  let base: string;

  beforeAll(async () => {
    const ca = createTestCa('Backend CA');
    const otherCa = createTestCa('Some Other CA');
    backend = await startHttpsBackend(ca, ['backend.example.test']);
    const address = randomLoopback();
    base = `http://${address}:8080`;
    // Four Services, all the same HTTPS server: verified, SAN mismatch, unknown CA, and no policy.
    const services = ['verified', 'san-mismatch', 'untrusted', 'no-policy']
      .map((name) => serviceYaml({ name, port: 443, endpoints: [{ host: '127.0.0.1', port: backend.port }] }))
      .join('---\n');
    const route = `apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: tls, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules:
${['verified', 'san-mismatch', 'untrusted', 'no-policy']
  .map(
    (s) => `    - matches: [{ path: { type: PathPrefix, value: /${s} } }]
      backendRefs: [{ name: ${s}, port: 443 }]`,
  )
  .join('\n')}
`;
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: http, protocol: HTTP, port: 8080 }'),
        'services.yaml': services,
        'route.yaml': route,
        'ca.yaml': `${configMapYaml('backend-ca', ca.certPem)}---\n${configMapYaml('other-ca', otherCa.certPem)}`,
        'policies.yaml': [
          policyYaml('verified', 'verified', 'backend-ca'),
          policyYaml(
            'san-mismatch',
            'san-mismatch',
            'backend-ca',
            '    subjectAltNames: [{ type: Hostname, hostname: someone-else.example.test }]\n',
          ),
          policyYaml('untrusted', 'untrusted', 'other-ca'),
        ].join('---\n'),
      },
    });
    await waitFor(
      'the verified route',
      async () => ((await get(`${base}/verified`)).status === 200 ? true : undefined),
      20_000,
      100,
    );
  }, 60_000);

  afterAll(async () => {
    backend?.server.close();
    backend?.server.closeAllConnections();
    await skein?.stop();
  });

  it('speaks TLS to the backend with the policy hostname as SNI and verifies its certificate', async () => {
    const res = await get(`${base}/verified/x`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ backend: 'https', path: '/verified/x' });
    // Every handshake so far (Envoy may reuse a connection for this request) named the policy's hostname.
    expect(backend.sni.length).toBeGreaterThan(0);
    expect(new Set(backend.sni)).toEqual(new Set(['backend.example.test']));
  });

  it('refuses a backend whose certificate lacks the subjectAltNames asked for (503)', async () => {
    expect((await get(`${base}/san-mismatch`)).status).toBe(503);
  });

  it('refuses a backend whose certificate another CA signed (503)', async () => {
    expect((await get(`${base}/untrusted`)).status).toBe(503);
  });

  it('without a policy, Envoy speaks clear text, which the HTTPS backend does not understand', async () => {
    const res = await get(`${base}/no-policy`);
    expect(res.status).toBe(503);
    // Envoy's own answer: the backend dropped the connection before any response.
    expect(res.body).toMatch(/^upstream connect error or disconnect\/reset before headers/);
  });
});

// ---------------------------------------------------------------------------------------------------
// HTTPRoute to an h2c backend

describe('HTTPRoute to a backend whose port says kubernetes.io/h2c', () => {
  let skein: TestSkein;
  let h2: Backend;
  let base: string;

  beforeAll(async () => {
    h2 = await h2cBackend.start({ host: '127.0.0.1', port: 0, name: 'h2c-web' });
    const address = randomLoopback();
    base = `http://${address}:8080`;
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: http, protocol: HTTP, port: 8080 }'),
        'web.yaml': serviceYaml({
          name: 'h2c-web',
          port: 80,
          appProtocol: 'kubernetes.io/h2c',
          endpoints: [{ host: h2.host, port: h2.port }],
        }),
        'route.yaml': `apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: h2c, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules: [{ backendRefs: [{ name: h2c-web, port: 80 }] }]
`,
      },
    });
    await waitFor(
      'the route',
      async () => ((await get(`${base}/`)).status === 200 ? true : undefined),
      20_000,
      100,
    );
  }, 60_000);

  afterAll(async () => {
    await h2?.close();
    await skein?.stop();
  });

  it('takes HTTP/1.1 from the client and speaks HTTP/2 without TLS (prior knowledge) to the backend', async () => {
    const res = await get(`${base}/over/h2c?x=1`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({
      backend: 'h2c-web',
      protocol: 'h2c',
      method: 'GET',
      path: '/over/h2c?x=1',
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// ReferenceGrant

describe('ReferenceGrant: a cross-namespace backendRef through Envoy', () => {
  let skein: TestSkein;
  let web: Backend;
  let base: string;

  const grant = `apiVersion: ${GW}/v1beta1
kind: ReferenceGrant
metadata: { name: from-edge, namespace: apps }
spec:
  from: [{ group: ${GW}, kind: HTTPRoute, namespace: default }]
  to: [{ group: "", kind: Service, name: web }]
`;

  beforeAll(async () => {
    web = await http1Backend.start({ host: '127.0.0.1', port: 0, name: 'apps-web' });
    const address = randomLoopback();
    base = `http://${address}:8080`;
    skein = await startTestSkein({
      files: {
        'gateway.yaml': gatewayYaml(address, '- { name: http, protocol: HTTP, port: 8080 }'),
        'web.yaml': serviceYaml({
          name: 'web',
          namespace: 'apps',
          port: 80,
          endpoints: [{ host: web.host, port: web.port }],
        }),
        'route.yaml': `apiVersion: ${GW}/v1
kind: HTTPRoute
metadata: { name: cross, namespace: default }
spec:
  parentRefs: [{ name: edge }]
  rules: [{ backendRefs: [{ name: web, namespace: apps, port: 80 }] }]
`,
      },
    });
    await waitFor(
      'the route (answering 500 for now)',
      async () => ((await get(`${base}/`)).status === 500 ? true : undefined),
      20_000,
      100,
    );
  }, 60_000);

  afterAll(async () => {
    await web?.close();
    await skein?.stop();
  });

  it('answers 500 while no ReferenceGrant allows the reference', async () => {
    expect((await get(`${base}/`)).status).toBe(500);
  });

  it('forwards once a ReferenceGrant in the target namespace allows it, and stops when it goes', async () => {
    await skein.write('grant.yaml', grant);
    const ok = await waitFor(
      'the grant to take effect',
      async () => {
        const res = await get(`${base}/granted`);
        return res.status === 200 ? res : undefined;
      },
      10_000,
      50,
    );
    expect(JSON.parse(ok.body)).toMatchObject({ backend: 'apps-web', path: '/granted' });

    await skein.write('grant.yaml', grant.replace('name: web', 'name: not-web'));
    await waitFor(
      'the grant to be withdrawn',
      async () => ((await get(`${base}/`)).status === 500 ? true : undefined),
      10_000,
      50,
    );
  });
});
