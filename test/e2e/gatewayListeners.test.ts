import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EchoReply, type EchoServer, startEchoServer } from '../../src/echo/echoServer.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { createTestCa, type TestCa, tlsSecretYaml } from '../helpers/pki.js';
import { GATEWAY_CLASS_YAML, serviceYaml, startTestSkein, type TestSkein } from '../helpers/standalone.js';

/**
 * Gateway listeners of every protocol, end to end: YAML → Skein (standalone) → a real Envoy → real
 * backends on loopback. HTTPS with two hostnames and two certificates chosen by SNI; TLS passthrough to
 * a TLS backend by SNI; TCP to a TCP echo server; UDP to a UDP echo server (on the same port number as
 * the TCP listener: another socket); and conflicted listeners (within one Gateway, and against an older
 * Gateway) that leave every other listener serving.
 */

const address = randomLoopback();
/** Distinct ports for the listeners, in a range unlikely to be taken on a random 127/8 address. */
const base = randomInt(20_000, 59_000);
const PORT = {
  https: base,
  passthrough: base + 1,
  tcpAndUdp: base + 2,
  conflicted: base + 3,
  http: base + 4,
  lateHttp: base + 5,
  terminate: base + 6,
  udpSplit: base + 7,
  tcpNoRoute: base + 8,
};

let ca: TestCa;
let skein: TestSkein | undefined;
let alpha: EchoServer;
let beta: EchoServer;
let tlsBackend: tls.Server;
let tcpBackend: net.Server;
let udpBackend: dgram.Socket;
/** Two more UDP echo servers that name themselves, for the weighted UDPRoute. */
let udpNamed: dgram.Socket[] = [];

function listen(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

function gatewaysYaml(): string {
  return `${GATEWAY_CLASS_YAML}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z" }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    - name: https-a
      protocol: HTTPS
      port: ${PORT.https}
      hostname: a.example.com
      tls: { certificateRefs: [{ name: a-cert }] }
    - name: https-b
      protocol: HTTPS
      port: ${PORT.https}
      hostname: b.example.com
      tls: { certificateRefs: [{ name: b-cert }] }
    - name: passthrough
      protocol: TLS
      port: ${PORT.passthrough}
      hostname: "*.tls.example.com"
      tls: { mode: Passthrough }
    - { name: tcp, protocol: TCP, port: ${PORT.tcpAndUdp} }
    - { name: udp, protocol: UDP, port: ${PORT.tcpAndUdp} }
    # HTTP and TCP on one port of one Gateway: both Conflicted, neither served.
    - { name: conflicted-http, protocol: HTTP, port: ${PORT.conflicted} }
    - { name: conflicted-tcp, protocol: TCP, port: ${PORT.conflicted} }
    - { name: http, protocol: HTTP, port: ${PORT.http} }
    - name: terminate
      protocol: TLS
      port: ${PORT.terminate}
      hostname: term.example.com
      tls: { mode: Terminate, certificateRefs: [{ name: term-cert }] }
    - { name: udp-split, protocol: UDP, port: ${PORT.udpSplit} }
    - { name: tcp-no-route, protocol: TCP, port: ${PORT.tcpNoRoute} }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: late, namespace: default, creationTimestamp: "2024-06-01T00:00:00Z" }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: "${address}" }]
  listeners:
    # The older Gateway serves HTTPS on this socket: ProtocolConflict, and only this listener loses.
    - { name: tcp-on-https-port, protocol: TCP, port: ${PORT.https} }
    - { name: http, protocol: HTTP, port: ${PORT.lateHttp} }
`;
}

function routesYaml(ports: { tls: number; tcp: number; udp: number; udpNamed: readonly number[] }): string {
  return `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: a, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: https-a }, { name: edge, sectionName: http }]
  hostnames: [a.example.com]
  rules: [{ backendRefs: [{ name: alpha, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: b, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: https-b }, { name: edge, sectionName: conflicted-http }]
  rules: [{ backendRefs: [{ name: beta, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: late, namespace: default }
spec:
  parentRefs: [{ name: late }]
  rules: [{ backendRefs: [{ name: beta, port: 80 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: { name: secure, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: passthrough }]
  hostnames: [secure.tls.example.com]
  rules: [{ backendRefs: [{ name: tls-backend, port: 443 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: tcp, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: tcp }]
  rules: [{ backendRefs: [{ name: tcp-echo, port: 9000 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: { name: udp, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: udp }]
  rules: [{ backendRefs: [{ name: udp-echo, port: 9000 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: { name: terminated, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: terminate }]
  rules: [{ backendRefs: [{ name: tcp-echo, port: 9000 }] }]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: { name: udp-split, namespace: default }
spec:
  parentRefs: [{ name: edge, sectionName: udp-split }]
  rules:
    - backendRefs:
        - { name: udp-one, port: 9000, weight: 1 }
        - { name: udp-two, port: 9000, weight: 1 }
---
${serviceYaml({ name: 'udp-one', port: 9000, protocol: 'UDP', endpoints: [{ host: '127.0.0.1', port: ports.udpNamed[0] ?? 0 }] })}---
${serviceYaml({ name: 'udp-two', port: 9000, protocol: 'UDP', endpoints: [{ host: '127.0.0.1', port: ports.udpNamed[1] ?? 0 }] })}---
${serviceYaml({ name: 'alpha', endpoints: [{ host: alpha.host, port: alpha.port }] })}---
${serviceYaml({ name: 'beta', endpoints: [{ host: beta.host, port: beta.port }] })}---
${serviceYaml({ name: 'tls-backend', port: 443, endpoints: [{ host: '127.0.0.1', port: ports.tls }] })}---
${serviceYaml({ name: 'tcp-echo', port: 9000, endpoints: [{ host: '127.0.0.1', port: ports.tcp }] })}---
${serviceYaml({ name: 'udp-echo', port: 9000, protocol: 'UDP', endpoints: [{ host: '127.0.0.1', port: ports.udp }] })}`;
}

beforeAll(async () => {
  ca = createTestCa();
  const aCert = ca.issue(['a.example.com']);
  const bCert = ca.issue(['b.example.com']);
  const backendCert = ca.issue(['secure.tls.example.com']);
  const termCert = ca.issue(['term.example.com']);

  alpha = await startEchoServer({ name: 'alpha', host: '127.0.0.1' });
  beta = await startEchoServer({ name: 'beta', host: '127.0.0.1' });
  // The TLS backend ends TLS itself and says which server name it was asked for.
  tlsBackend = tls.createServer({ cert: backendCert.certPem, key: backendCert.keyPem }, (socket) => {
    socket.end(`tls-backend saw SNI ${socket.servername || 'none'}`);
  });
  tcpBackend = net.createServer((socket) => {
    socket.on('data', (d) => socket.write(`tcp-echo:${d.toString()}`));
    socket.on('error', () => {});
  });
  const tlsPort = await listen(tlsBackend, '127.0.0.1');
  const tcpPort = await listen(tcpBackend, '127.0.0.1');
  udpBackend = dgram.createSocket('udp4');
  udpBackend.on('message', (msg, rinfo) => {
    udpBackend.send(`udp-echo:${msg.toString()}`, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => udpBackend.bind(0, '127.0.0.1', resolve));
  const udpPort = udpBackend.address().port;
  udpNamed = [];
  for (const name of ['one', 'two']) {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (_msg, rinfo) => socket.send(name, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    udpNamed.push(socket);
  }

  skein = await startTestSkein({
    files: {
      'gateways.yaml': gatewaysYaml(),
      'secrets.yaml': [
        tlsSecretYaml('a-cert', aCert),
        tlsSecretYaml('b-cert', bCert),
        tlsSecretYaml('term-cert', termCert),
      ].join('---\n'),
      'routes.yaml': routesYaml({
        tls: tlsPort,
        tcp: tcpPort,
        udp: udpPort,
        udpNamed: udpNamed.map((u) => u.address().port),
      }),
    },
  });
  // Every listener is up once the last of them answers.
  await waitFor('the HTTPS listener', () => httpsGet('a.example.com').then(() => true), 20_000);
}, 60_000);

afterAll(async () => {
  await skein?.stop();
  await alpha?.close();
  await beta?.close();
  await new Promise((r) => tlsBackend?.close(r));
  await new Promise((r) => tcpBackend?.close(r));
  udpBackend?.close();
  for (const u of udpNamed) u.close();
});

interface HttpsResult {
  readonly status: number | undefined;
  readonly reply: EchoReply;
  /** DNS names of the certificate the gateway served. */
  readonly san: string | undefined;
}

/** GET / over HTTPS with SNI and Host `servername`, trusting only the test CA. */
function httpsGet(servername: string): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: address,
        port: PORT.https,
        path: '/',
        servername,
        headers: { host: servername },
        ca: ca.certPem,
        agent: false,
        timeout: 5_000,
      },
      (res) => {
        const san = (res.socket as tls.TLSSocket).getPeerCertificate().subjectaltname;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () => resolve({ status: res.statusCode, reply: JSON.parse(text) as EchoReply, san }));
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}

/** Plain HTTP GET to the gateway address with Host `host` (fetch cannot set Host); the backend's name. */
function httpGet(
  port: number,
  host: string,
): Promise<{ status: number | undefined; backend: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: address, port, path: '/', headers: { host }, agent: false, timeout: 5_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode,
            backend: res.statusCode === 200 ? (JSON.parse(text) as EchoReply).backend : undefined,
          }),
        );
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
  });
}

/** Sends one datagram and resolves with the first reply, or undefined after 300 ms (for waitFor). */
function udpAsk(client: dgram.Socket, port: number, text: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      resolve(undefined);
    }, 300);
    const onMessage = (msg: Buffer): void => {
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve(msg.toString());
    };
    client.on('message', onMessage);
    client.send(text, port, address);
  });
}

/** Opens a TCP connection and resolves with everything received until the peer closes (bounded). */
function exchange(connect: () => net.Socket, send?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect();
    let text = '';
    const timer = setTimeout(() => socket.destroy(new Error(`no close after 5 s (got "${text}")`)), 5_000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      text += d;
      if (send !== undefined && text.includes(send)) socket.end();
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (send !== undefined) socket.write(send);
  });
}

describe('Gateway listeners with a real Envoy', () => {
  it('HTTPS: serves each hostname with its own certificate, chosen by SNI, trusted by the test CA', async () => {
    const a = await httpsGet('a.example.com');
    expect(a.status).toBe(200);
    expect(a.reply.backend).toBe('alpha');
    expect(a.san).toBe('DNS:a.example.com');
    const b = await httpsGet('b.example.com');
    expect(b.status).toBe(200);
    expect(b.reply.backend).toBe('beta');
    expect(b.san).toBe('DNS:b.example.com');
  });

  it('HTTPS: refuses a server name no listener has (no certificate to offer)', async () => {
    // No filter chain matches the ClientHello's SNI: Envoy resets the connection during the handshake.
    await expect(httpsGet('c.example.com')).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('TLS passthrough: forwards the encrypted bytes by SNI to the TLS backend, whose certificate the client sees', async () => {
    const text = await waitFor('the TLS passthrough listener', async () => {
      let san: string | undefined;
      const got = await exchange(() => {
        const s = tls.connect({
          host: address,
          port: PORT.passthrough,
          servername: 'secure.tls.example.com',
          ca: ca.certPem,
        });
        s.once('secureConnect', () => {
          san = s.getPeerCertificate().subjectaltname;
        });
        return s;
      });
      return `${got} / ${san}`;
    });
    expect(text).toBe('tls-backend saw SNI secure.tls.example.com / DNS:secure.tls.example.com');
  });

  it('TLS passthrough: closes connections for a server name no route takes', async () => {
    const connect = () =>
      tls.connect({
        host: address,
        port: PORT.passthrough,
        servername: 'other.tls.example.com',
        ca: ca.certPem,
      });
    await expect(exchange(connect)).rejects.toMatchObject({ code: 'ECONNRESET', syscall: 'read' });
  });

  it('TCP: proxies a connection to the TCP echo server', async () => {
    const text = await waitFor('the TCP listener', () =>
      exchange(() => net.connect({ host: address, port: PORT.tcpAndUdp }), 'hello').then(
        (t) => t || undefined,
      ),
    );
    expect(text).toBe('tcp-echo:hello');
  });

  it('TLS terminate: ends TLS with the listener certificate and forwards the plain bytes', async () => {
    const text = await waitFor('the TLS terminate listener', async () => {
      let san: string | undefined;
      const got = await exchange(() => {
        const s = tls.connect({
          host: address,
          port: PORT.terminate,
          servername: 'term.example.com',
          ca: ca.certPem,
        });
        s.once('secureConnect', () => {
          san = s.getPeerCertificate().subjectaltname;
        });
        return s;
      }, 'over tls');
      return `${got} / ${san}`;
    });
    expect(text).toBe('tcp-echo:over tls / DNS:term.example.com');
  });

  it('TCP without a route: accepts and closes at once, sending nothing', async () => {
    // The listener exists (the connection is accepted, not refused) and is closed without a byte. A
    // close with unread data would be a reset, so nothing is sent.
    const outcome = await new Promise<string>((resolve) => {
      const socket = net.connect({ host: address, port: PORT.tcpNoRoute });
      let received = 0;
      let connected = false;
      const timer = setTimeout(() => socket.destroy(new Error('still open after 5 s')), 5_000);
      socket.on('connect', () => {
        connected = true;
      });
      socket.on('data', (d: Buffer) => {
        received += d.length;
      });
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(`connected=${connected} received=${received}`);
      });
      socket.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        resolve(
          e.code === 'ECONNRESET' && connected
            ? `connected=true received=${received}`
            : `error ${e.code ?? e.message}`,
        );
      });
    });
    expect(outcome).toBe('connected=true received=0');
  });

  it('UDP: splits clients over weighted backends (by source port)', async () => {
    const seen = new Map<string, number>();
    // 40 clients, each its own source port; with weights 1:1, both backends get some (the chance that
    // one gets all 40 is 2^-39).
    for (let i = 0; i < 40; i++) {
      const client = dgram.createSocket('udp4');
      try {
        await new Promise<void>((resolve) => client.bind(0, address, resolve));
        const reply = await waitFor(
          'a UDP reply from the split',
          () => udpAsk(client, PORT.udpSplit, 'who'),
          10_000,
        );
        seen.set(reply, (seen.get(reply) ?? 0) + 1);
      } finally {
        client.close();
      }
    }
    expect([...seen.keys()].sort()).toEqual(['one', 'two']);
  });

  it('UDP: proxies datagrams to the UDP echo server, on the port number the TCP listener also uses', async () => {
    const client = dgram.createSocket('udp4');
    try {
      await new Promise<void>((resolve) => client.bind(0, address, resolve));
      const reply = await waitFor('a UDP reply', () => udpAsk(client, PORT.tcpAndUdp, 'ping'), 15_000);
      expect(reply).toBe('udp-echo:ping');
    } finally {
      client.close();
    }
  });

  it('conflicted listeners serve nothing, and every other listener of their Gateways keeps serving', async () => {
    // Within edge: HTTP and TCP on one port, both Conflicted: nothing listens there.
    await expect(httpGet(PORT.conflicted, 'b.example.com')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    // edge's other HTTP listener serves.
    expect(await httpGet(PORT.http, 'a.example.com')).toEqual({ status: 200, backend: 'alpha' });
    // late's TCP listener lost the HTTPS socket to edge (older); late's HTTP listener serves.
    expect(await waitFor('the late HTTP listener', () => httpGet(PORT.lateHttp, 'any.example.com'))).toEqual({
      status: 200,
      backend: 'beta',
    });
    expect((await httpsGet('a.example.com')).reply.backend).toBe('alpha');

    // And the statuses say so.
    const conflicted = (name: string) => {
      const gw = skein?.skein.controlPlane.statuses.find((s) => s.kind === 'Gateway' && s.name === name);
      const listeners = gw?.status['listeners'] as {
        name: string;
        conditions: { type: string; status: string; reason: string }[];
      }[];
      return Object.fromEntries(
        listeners.map((l) => {
          const c = l.conditions.find((x) => x.type === 'Conflicted');
          return [l.name, c?.status === 'True' ? c.reason : 'no'];
        }),
      );
    };
    expect(conflicted('edge')).toEqual({
      'https-a': 'no',
      'https-b': 'no',
      passthrough: 'no',
      tcp: 'no',
      udp: 'no',
      'conflicted-http': 'ProtocolConflict',
      'conflicted-tcp': 'ProtocolConflict',
      http: 'no',
      terminate: 'no',
      'udp-split': 'no',
      'tcp-no-route': 'no',
    });
    expect(conflicted('late')).toEqual({ 'tcp-on-https-port': 'ProtocolConflict', http: 'no' });
  });
});
