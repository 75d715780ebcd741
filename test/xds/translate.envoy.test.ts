import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { generateKeyPairSync, randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Ir, IrRoute, IrSecret } from '../../src/model/ir.js';
import { encodeMessage, type ProtoObject, TypeUrl } from '../../src/xds/proto.js';
import type { ResourceSpec } from '../../src/xds/resource.js';
import { HTTP_CONNECTION_MANAGER } from '../../src/xds/translate/httpConnectionManager.js';
import { INVALID_BACKEND_CLUSTER } from '../../src/xds/translate/route.js';
import { translateIr } from '../../src/xds/translate/translate.js';
import { ensureEnvoy, tempDir } from '../helpers/envoy.js';
import { randomLoopback, waitFor } from '../helpers/net.js';
import { loadCase, loadCases } from './translateCases.js';

/**
 * Acceptance by the real Envoy. The translated resources are turned into a static bootstrap (RDS
 * replaced by the inline route configuration, EDS by a STATIC cluster with the translated assignment,
 * SDS by static secrets) and written as binary protobuf, the very encoding the xDS server sends. Envoy
 * then checks every message against its own validation rules and builds the listeners, routes,
 * clusters and TLS contexts (`--mode validate`), or serves with them.
 */

let envoyPath = '';

beforeAll(async () => {
  envoyPath = (await ensureEnvoy()).path;
});

// ---------------------------------------------------------------------------------------------------
// xDS resources → static bootstrap

function byType(specs: readonly ResourceSpec[], typeUrl: TypeUrl): Map<string, ProtoObject> {
  return new Map(specs.filter((s) => s.typeUrl === typeUrl).map((s) => [s.name, s.message]));
}

function need<T>(map: Map<string, T>, name: string): T {
  const v = map.get(name);
  if (v === undefined) throw new Error(`no resource named "${name}"`);
  return v;
}

/** The parts of a translated Listener that the conversion rewrites. */
interface ListenerShape {
  filterChains?: {
    filters: {
      name: string;
      typedConfig: { rds?: { routeConfigName: string }; routeConfig?: ProtoObject };
    }[];
    transportSocket?: {
      typedConfig: { commonTlsContext: { tlsCertificateSdsSecretConfigs: { sdsConfig?: unknown }[] } };
    };
  }[];
}

interface ClusterShape {
  edsClusterConfig?: { serviceName: string };
}

/** The bootstrap an Envoy would end up with after receiving `specs` over ADS. */
function staticBootstrap(specs: readonly ResourceSpec[]): ProtoObject {
  const routes = byType(specs, TypeUrl.RouteConfiguration);
  const endpoints = byType(specs, TypeUrl.ClusterLoadAssignment);

  const listeners = [...byType(specs, TypeUrl.Listener).values()].map((message) => {
    const l = structuredClone(message) as unknown as ListenerShape;
    // UDP listeners have no filter chains (their udp_proxy is a listener filter).
    for (const chain of l.filterChains ?? []) {
      for (const filter of chain.filters) {
        const hcm = filter.typedConfig;
        if (filter.name !== HTTP_CONNECTION_MANAGER || hcm.rds === undefined) continue;
        const routeConfig = need(routes, hcm.rds.routeConfigName);
        // A static route configuration must name only defined clusters unless told otherwise; RDS, how
        // Envoy really gets it, never checks. Only the deliberately undefined cluster needs the waiver.
        const usesUndefined = JSON.stringify(routeConfig).includes(`"${INVALID_BACKEND_CLUSTER}"`);
        hcm.routeConfig = usesUndefined
          ? { ...routeConfig, validateClusters: { value: false } }
          : routeConfig;
        delete hcm.rds;
      }
      // Without a config source an SDS secret config names a static secret.
      for (const sds of chain.transportSocket?.typedConfig.commonTlsContext.tlsCertificateSdsSecretConfigs ??
        []) {
        delete sds.sdsConfig;
      }
    }
    return l as unknown as ProtoObject;
  });

  const clusters = [...byType(specs, TypeUrl.Cluster).values()].map((message) => {
    const { edsClusterConfig, ...rest } = message as unknown as ClusterShape;
    // Clusters that are not EDS (the original-destination one) are static already.
    if (edsClusterConfig === undefined) return message;
    return { ...rest, type: 'STATIC', loadAssignment: need(endpoints, edsClusterConfig.serviceName) };
  });

  const secrets = [...byType(specs, TypeUrl.Secret).values()];
  return {
    node: { id: 'skein-translate-test', cluster: 'skein' },
    staticResources: { listeners, clusters, secrets },
  };
}

// ---------------------------------------------------------------------------------------------------
// TLS material

/** A self-signed certificate for `hostname` (as CN and DNS SAN), made with node-forge. */
function selfSigned(hostname: string): { cert: string; key: string } {
  // Node's native RSA key generation is fast; forge then builds and signs the certificate.
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = `01${randomInt(1, 2 ** 40).toString(16)}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: 'commonName', value: hostname }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] }]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: privateKey };
}

/** `ir` with real certificates in place of the placeholders, for the hostname each secret is for. */
function withRealSecrets(ir: Ir, hostnameOf: (secret: IrSecret) => string): Ir {
  const secrets = ir.secrets.map((s) => {
    const { cert, key } = selfSigned(hostnameOf(s));
    return { ...s, certificateChain: cert, privateKey: key };
  });
  return { ...ir, secrets };
}

/** `default/a-example-com` → `a.example.com` (how the https-two-secrets case names its secrets). */
function hostnameOfSecret(s: IrSecret): string {
  return (s.name.split('/')[1] ?? s.name).replaceAll('-', '.');
}

// ---------------------------------------------------------------------------------------------------
// Running Envoy

async function envoyValidate(bootstrap: ProtoObject): Promise<{ code: number | null; output: string }> {
  const dir = await tempDir('skein-translate-');
  try {
    // `.pb`: Envoy reads the file as a binary Bootstrap message.
    const file = path.join(dir.path, 'bootstrap.pb');
    await writeFile(file, encodeMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap));
    return await new Promise((resolve) => {
      execFile(
        envoyPath,
        ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'warning'],
        { timeout: 30_000 },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
          resolve({ code, output: `${stdout}${stderr}` });
        },
      );
    });
  } finally {
    await dir.remove();
  }
}

// ---------------------------------------------------------------------------------------------------

describe('Envoy accepts the translation', () => {
  // Every case, the gRPC one included: its IR is a valid Envoy configuration too.
  it.each(loadCases().map((c) => [c.name, c] as const))('%s (envoy flavour)', async (_name, c) => {
    const ir = withRealSecrets(c.ir, hostnameOfSecret);
    const result = await envoyValidate(staticBootstrap(translateIr(ir, { flavor: 'envoy' })));
    expect(result.output).not.toMatch(/error/i);
    expect(result.code, result.output).toBe(0);
  });

  it('rejects a broken configuration (negative control)', async () => {
    const specs = translateIr(loadCase('matches').ir, { flavor: 'envoy' });
    const bootstrap = staticBootstrap(specs);
    // What the translator must never emit: a segment prefix with its trailing slash.
    const text = JSON.stringify(bootstrap).replace(
      '"pathSeparatedPrefix":"/v2"',
      '"pathSeparatedPrefix":"/v2/"',
    );
    expect(text).toContain('/v2/');
    const result = await envoyValidate(JSON.parse(text) as ProtoObject);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/PathSeparatedPrefix/);
  });
});

/** A real Envoy serving a static bootstrap; stop() ends it (by pid) and removes its directory. */
interface ServingEnvoy {
  stop(): Promise<void>;
}

async function serveStatic(bootstrap: ProtoObject, ready: () => Promise<unknown>): Promise<ServingEnvoy> {
  const dir = await tempDir('skein-translate-serve-');
  const file = path.join(dir.path, 'bootstrap.pb');
  await writeFile(file, encodeMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap));
  const child: ChildProcess = spawn(envoyPath, ['-c', file, '--disable-hot-restart', '-l', 'warning'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const stop = async (): Promise<void> => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      // Bounded: Envoy exits on SIGTERM at once; if it ever hangs, SIGKILL it rather than the test run.
      const timer = setTimeout(() => child.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await dir.remove();
  };
  try {
    await waitFor('Envoy to serve', () => {
      if (child.exitCode !== null) throw new Error(`Envoy exited ${child.exitCode}: ${output}`);
      return ready().then(() => true);
    });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${output}`);
  }
  return { stop };
}

describe('Envoy serves the HTTPS listener', () => {
  const address = randomLoopback();
  const port = randomInt(20_000, 60_000);
  let envoy: ServingEnvoy | undefined;

  beforeAll(async () => {
    const c = loadCase('https-two-secrets');
    const ir = withRealSecrets(c.ir, hostnameOfSecret);
    const listeners = ir.listeners
      .filter((l) => l.protocol === 'HTTPS')
      .map((l) => ({ ...l, address, port }));
    const bootstrap = staticBootstrap(translateIr({ ...ir, listeners }, { flavor: 'envoy' }));
    envoy = await serveStatic(bootstrap, () => handshake(undefined));
  });

  afterAll(async () => {
    await envoy?.stop();
  });

  /** Completes a TLS handshake, offering `servername` as SNI (none when undefined); returns the peer. */
  function handshake(servername: string | undefined): Promise<{ cn: unknown; alpn: string | false }> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: address,
        port,
        rejectUnauthorized: false,
        ALPNProtocols: ['h2', 'http/1.1'],
        ...(servername !== undefined ? { servername } : {}),
      });
      socket.once('secureConnect', () => {
        const peer = socket.getPeerCertificate();
        const result = { cn: peer.subject?.CN, alpn: socket.alpnProtocol ?? false };
        socket.destroy();
        resolve(result);
      });
      socket.once('error', reject);
    });
  }

  it('picks the certificate by SNI, and the first one without SNI', async () => {
    expect((await handshake('a.example.com')).cn).toBe('a.example.com');
    expect((await handshake('b.example.com')).cn).toBe('b.example.com');
    expect((await handshake(undefined)).cn).toBe('a.example.com');
    expect((await handshake('unknown.example.org')).cn).toBe('a.example.com');
  });

  it('offers HTTP/2 over ALPN', async () => {
    expect((await handshake('a.example.com')).alpn).toBe('h2');
  });

  it('routes by Host behind TLS (direct response of b.example.com)', async () => {
    const { status, body } = await new Promise<{ status: number | undefined; body: string }>(
      (resolve, reject) => {
        const req = https.request(
          {
            host: address,
            port,
            path: '/',
            servername: 'b.example.com',
            headers: { host: 'b.example.com' },
            rejectUnauthorized: false,
            agent: false,
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => {
              text += d;
            });
            res.on('end', () => resolve({ status: res.statusCode, body: text }));
          },
        );
        req.once('error', reject);
        req.end();
      },
    );
    expect(status).toBe(503);
    expect(body).toBe('b is down for maintenance');
  });
});

describe('Envoy balances over ready endpoints only', () => {
  const address = randomLoopback();
  const port = randomInt(20_000, 60_000);
  let backend: http.Server | undefined;
  let envoy: ServingEnvoy | undefined;

  beforeAll(async () => {
    const server = http.createServer((_req, res) => res.end('ready'));
    backend = server;
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    const backendPort = (server.address() as AddressInfo).port;
    // Not ready, and nothing listens there: a request sent to them would fail.
    const notReady = [1, 2].map((i) => ({ address, port: (backendPort + i) % 65_536 || 1, ready: false }));
    const route = (name: string, path: string, backendName: string): IrRoute => ({
      name,
      match: { path: { kind: 'PathPrefix', value: path } },
      action: { kind: 'forward', backends: [{ backend: backendName, weight: 1 }] },
    });
    const ir: Ir = {
      listeners: [
        {
          name: `listener/${address}/${port}`,
          address,
          port,
          protocol: 'HTTP',
          virtualHosts: [
            {
              name: 'vh',
              hostnames: ['*'],
              routes: [
                route('mixed', '/mixed', 'default/mixed/80'),
                route('none', '/none', 'default/none/80'),
                {
                  name: 'half-invalid',
                  match: { path: { kind: 'PathPrefix', value: '/half-invalid' } },
                  action: {
                    kind: 'forward',
                    backends: [{ backend: 'default/mixed/80', weight: 1 }],
                    invalidBackendWeight: 1,
                  },
                },
              ],
            },
          ],
        },
      ],
      backends: [
        // One ready of three: below Envoy's default panic threshold (50%), where it would use them all.
        {
          name: 'default/mixed/80',
          protocol: 'http1',
          endpoints: [{ address, port: backendPort, ready: true }, ...notReady],
        },
        { name: 'default/none/80', protocol: 'http1', endpoints: notReady },
      ],
      secrets: [],
    };
    envoy = await serveStatic(staticBootstrap(translateIr(ir, { flavor: 'envoy' })), () => get('/mixed'));
  });

  afterAll(async () => {
    await envoy?.stop();
    await new Promise((r) => backend?.close(r));
  });

  function get(path: string): Promise<{ status: number | undefined }> {
    return new Promise((resolve, reject) => {
      const req = http.get({ host: address, port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode }));
      });
      req.once('error', reject);
    });
  }

  it('never sends to an endpoint that is not ready', async () => {
    for (let i = 0; i < 30; i++) expect((await get('/mixed')).status).toBe(200);
  });

  it('answers 503 when no endpoint is ready', async () => {
    expect((await get('/none')).status).toBe(503);
  });

  it('answers 500 for the share of a backend that did not resolve, and serves the rest', async () => {
    const statuses = new Map<number | undefined, number>();
    for (let i = 0; i < 60; i++) {
      const { status } = await get('/half-invalid');
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
    // 60 tries at 1:1: each status shows up unless something is off (chance of a miss: 2^-59).
    expect([...statuses.keys()].sort()).toEqual([200, 500]);
  });
});
