import { spawnSync } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, credentials, status as GrpcStatus } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { SnapshotCache } from '../../src/xds/cache.js';
import { XdsChannelName, type XdsSendEvent } from '../../src/xds/events.js';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import { createXdsServer } from '../../src/xds/server.js';
import type { Snapshot } from '../../src/xds/snapshot.js';
import { decodeSotwResponse, encodeSotwRequest, XdsTestClient } from '../helpers/adsClient.js';
import { type Harness, type Mesh, meshSnapshot, startServer } from './serverFixtures.js';

const node = { id: 'envoy-srv' };
const mesh1: Mesh = {
  clusters: { a: 8001, b: 8002 },
  routes: { rc: ['a'] },
  listeners: { l1: { port: 10000, route: 'rc' } },
};

let h: Harness;
let client: XdsTestClient;
let enc: ResourceEncoder;
let snap1: Snapshot;

beforeEach(async () => {
  h = await startServer();
  client = new XdsTestClient(h.address);
  enc = new ResourceEncoder();
  snap1 = meshSnapshot(enc, mesh1);
  h.cache.setSnapshot('default', snap1);
});

afterEach(async () => {
  client.close();
  await h.close();
});

describe('encode once', () => {
  it('serves the same encoded bytes to every stream, SotW and delta, without encoding again', async () => {
    const sends: XdsSendEvent[] = [];
    const onSend = (m: unknown): void => {
      sends.push(m as XdsSendEvent);
    };
    diagnosticsChannel.subscribe(XdsChannelName.Send, onSend);
    onTestFinished(() => {
      diagnosticsChannel.unsubscribe(XdsChannelName.Send, onSend);
    });
    const encoded = enc.encodeCount;
    expect(encoded).toBe(6);
    const sotw = client.sotw();
    const delta = client.delta();
    const other = new XdsTestClient(h.address);
    try {
      const sotw2 = other.sotw();
      sotw.send({ typeUrl: TypeUrl.Cluster, node });
      delta.send({ typeUrl: TypeUrl.Cluster, node });
      sotw2.send({ typeUrl: TypeUrl.Cluster, node: { id: 'envoy-2' } });
      const [r1, r2, r3] = await Promise.all([sotw.next(), delta.next(), sotw2.next()]);
      for (const name of ['a', 'b']) {
        const resource = snap1.resources.get(TypeUrl.Cluster)?.get(name);
        if (resource === undefined) throw new Error(`no cluster ${name}`);
        const any = Buffer.from(resource.any);
        for (const r of [r1, r2, r3])
          expect(r?.resources.find((x) => x.name === name)?.any.equals(any)).toBe(true);
        // Spliced verbatim: the SotW response holds the Any bytes, the delta one the whole Resource bytes.
        expect(r1?.raw.includes(any)).toBe(true);
        expect(r2?.raw.includes(Buffer.from(resource.deltaResource))).toBe(true);
      }
      // Rebuilding the same config hits the encoder's memo, and publishing it pushes nothing.
      h.cache.setSnapshot('default', meshSnapshot(enc, mesh1));
      expect(enc.encodeCount).toBe(encoded);
      await sotw.expectQuiet(100);
      expect([...sotw.violations, ...delta.violations, ...sotw2.violations]).toEqual([]);
      expect(sends.map((e) => [e.kind, e.type, e.resources, e.removed, e.bytes > 0])).toEqual(
        expect.arrayContaining([
          ['ads-sotw', 'CDS', ['a', 'b'], [], true],
          ['ads-delta', 'CDS', ['a', 'b'], [], true],
        ]),
      );
      expect(sends).toHaveLength(3);
    } finally {
      other.close();
    }
  });
});

describe('robustness', () => {
  it('logs and skips a malformed request; the stream goes on', async () => {
    const s = client.sotw();
    s.sendRaw(Buffer.from([0x0f, 0x00, 0x01]));
    s.sendRaw(Buffer.from([0x22, 0x10, 0x61]));
    s.send({ typeUrl: TypeUrl.Cluster, node });
    const r = await s.next();
    expect(r.typeUrl).toBe(TypeUrl.Cluster);
    expect(h.server.status().streams).toHaveLength(1);
  });

  it('ignores a type it does not serve; the stream goes on', async () => {
    const s = client.sotw();
    s.send({
      typeUrl: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
      resourceNames: ['x'],
      node,
    });
    s.send({ typeUrl: '' });
    await s.expectQuiet(100);
    s.send({ typeUrl: TypeUrl.Listener });
    expect((await s.next()).typeUrl).toBe(TypeUrl.Listener);
  });

  it('cleans up a stream whose client disconnects mid-stream, and keeps serving', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    await s.next();
    expect(h.server.status().streams).toHaveLength(1);
    // Disconnect with a response unanswered, then publish: nothing is written to the dead stream.
    s.cancel();
    await s.until(() => h.server.status().streams.length === 0, 2000, 'the server to drop the stream');
    const gauge = await h.server.registry.getSingleMetric('skein_xds_streams')?.get();
    expect(gauge?.values.find((v) => v.labels['kind'] === 'ads-sotw')?.value).toBe(0);
    expect(h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 1, b: 2 } }))).toEqual(
      [],
    );
    const s2 = client.delta();
    s2.send({ typeUrl: TypeUrl.Cluster, node });
    expect((await s2.next()).resources).toHaveLength(2);
  });

  it('ends the stream when the client half-closes', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    await s.next();
    s.end();
    expect((await s.ended).code).toBe(GrpcStatus.OK);
    await s.until(() => h.server.status().streams.length === 0, 2000, 'the server to drop the stream');
  });

  it('closes promptly with streams open, ending them', async () => {
    const s = client.sotw();
    const d = client.delta();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    d.send({ typeUrl: TypeUrl.Listener, node });
    await Promise.all([s.next(), d.next()]);
    const t0 = Date.now();
    await h.server.close();
    expect(Date.now() - t0).toBeLessThan(2000);
    const [e1, e2] = await Promise.all([s.ended, d.ended]);
    expect([e1.code, e2.code]).toEqual([GrpcStatus.OK, GrpcStatus.OK]);
    expect(h.server.status().streams).toEqual([]);
    // The socket file is gone; close is idempotent; a closed server cannot listen again.
    expect(existsSync(h.address.slice('unix://'.length))).toBe(false);
    await h.server.close();
    await expect(h.server.listen('127.0.0.1:0')).rejects.toMatchObject({ code: 'SKEIN_XDS_CLOSED' });
  });
});

describe('fetch', () => {
  it('answers FetchClusters and FetchEndpoints with the current snapshot', async () => {
    const c = new Client(h.address, credentials.createInsecure());
    const fetch = (method: string, resourceNames: string[]) =>
      new Promise<ReturnType<typeof decodeSotwResponse>>((resolve, reject) => {
        c.makeUnaryRequest(
          method,
          (r: Buffer) => r,
          (b: Buffer) => decodeSotwResponse(b),
          encodeSotwRequest({ typeUrl: '', resourceNames, node }),
          (err, res) => (err !== null || res === undefined ? reject(err) : resolve(res)),
        );
      });
    try {
      const cds = await fetch('/envoy.service.cluster.v3.ClusterDiscoveryService/FetchClusters', []);
      expect(cds.typeUrl).toBe(TypeUrl.Cluster);
      expect(cds.versionInfo).toBe(snap1.versions.get(TypeUrl.Cluster));
      expect(cds.resources.map((r) => r.name)).toEqual(['a', 'b']);
      const eds = await fetch('/envoy.service.endpoint.v3.EndpointDiscoveryService/FetchEndpoints', [
        'b',
        'zz',
      ]);
      expect(eds.resources.map((r) => r.name)).toEqual(['b']);
    } finally {
      c.close();
    }
  });
});

describe('listen', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'skein-listen-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function server() {
    return createXdsServer({ cache: new SnapshotCache(), logger: silentLogger, shutdownGraceMs: 100 });
  }

  it('replaces a stale socket left by a dead process', async () => {
    const sock = path.join(dir, 'stale.sock');
    // A process that binds the socket and dies without cleaning up.
    const child = spawnSync(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`,
      ],
      { timeout: 10_000 },
    );
    expect(child.signal).toBe('SIGKILL');
    expect(existsSync(sock)).toBe(true);
    const s = server();
    try {
      expect(await s.listen(`unix://${sock}`)).toBe(`unix://${sock}`);
      const c = new XdsTestClient(`unix://${sock}`);
      const st = c.sotw();
      st.send({ typeUrl: TypeUrl.Cluster, node });
      await st.until(() => s.status().streams.length === 1, 2000, 'the stream');
      c.close();
    } finally {
      await s.close();
    }
  });

  it('refuses a socket another process serves on, and a path that is not a socket', async () => {
    const live = path.join(dir, 'live.sock');
    const other = createServer();
    await new Promise<void>((r) => other.listen(live, r));
    const plain = path.join(dir, 'file.txt');
    writeFileSync(plain, 'precious');
    const s = server();
    try {
      await expect(s.listen(`unix://${live}`)).rejects.toMatchObject({ code: 'SKEIN_XDS_ADDRESS_IN_USE' });
      await expect(s.listen(`unix://${plain}`)).rejects.toMatchObject({ code: 'SKEIN_XDS_NOT_A_SOCKET' });
      expect(existsSync(plain)).toBe(true);
      await expect(s.listen('unix://relative.sock')).rejects.toMatchObject({ code: 'SKEIN_XDS_BAD_ADDRESS' });
      await expect(s.listen('localhost')).rejects.toMatchObject({ code: 'SKEIN_XDS_BAD_ADDRESS' });
      await expect(s.listen('127.0.0.1:70000')).rejects.toMatchObject({ code: 'SKEIN_XDS_BAD_ADDRESS' });
    } finally {
      await s.close();
      await new Promise((r) => other.close(r));
    }
  });

  it('makes a missing socket directory, and fails promptly where none can be made (under /proc, under a file)', async () => {
    const s = server();
    try {
      const nested = path.join(dir, 'a', 'b', 'x.sock');
      await s.listen(`unix://${nested}`);
      expect(existsSync(nested)).toBe(true);
      const file = path.join(dir, 'not-a-dir');
      writeFileSync(file, '');
      const t0 = Date.now();
      await expect(s.listen('unix:///proc/skein-nope/x.sock')).rejects.toMatchObject({
        code: 'SKEIN_XDS_LISTEN_FAILED',
        message: expect.stringContaining('/proc/skein-nope'),
      });
      await expect(s.listen(`unix://${file}/x.sock`)).rejects.toMatchObject({
        code: 'SKEIN_XDS_LISTEN_FAILED',
        message: expect.stringContaining(`${file} is not a directory`),
      });
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      await s.close();
    }
  });

  it('listens on loopback TCP with port 0 and returns the bound address', async () => {
    const cache = new SnapshotCache();
    cache.setSnapshot('default', snap1);
    const s = createXdsServer({ cache, logger: silentLogger });
    try {
      const address = await s.listen('127.0.0.1:0');
      expect(address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(address).not.toBe('127.0.0.1:0');
      const c = new XdsTestClient(address);
      const st = c.sotw();
      st.send({ typeUrl: TypeUrl.Cluster, node });
      expect((await st.next()).resources).toHaveLength(2);
      c.close();
    } finally {
      await s.close();
    }
  });

  it('validates its options up front', () => {
    const cache = new SnapshotCache();
    expect(() => createXdsServer({ cache, logger: silentLogger, shutdownGraceMs: -1 })).toThrow(
      /shutdownGraceMs .* current value is -1/,
    );
    expect(() => createXdsServer({ cache, logger: silentLogger, nackHistory: 0 })).toThrow(/nackHistory/);
  });
});
