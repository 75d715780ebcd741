import diagnosticsChannel from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type XdsAckEvent, XdsChannelName, type XdsNackEvent } from '../../src/xds/events.js';
import { TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import { createSnapshot } from '../../src/xds/snapshot.js';
import { XdsTestClient } from '../helpers/adsClient.js';
import {
  clusterSpec,
  type Harness,
  type Mesh,
  meshResources,
  meshSnapshot,
  startServer,
} from './serverFixtures.js';

const node = { id: 'envoy-nack' };

const mesh1: Mesh = {
  clusters: { a: 8001, b: 8002 },
  routes: { rc: ['a'] },
  listeners: { l1: { port: 10000, route: 'rc' } },
};

let h: Harness;
let client: XdsTestClient;
let enc: ResourceEncoder;
let registry: Registry;
let logLines: Array<Record<string, unknown>>;
const nackEvents: XdsNackEvent[] = [];
const ackEvents: XdsAckEvent[] = [];
const onNack = (m: unknown): void => {
  nackEvents.push(m as XdsNackEvent);
};
const onAck = (m: unknown): void => {
  ackEvents.push(m as XdsAckEvent);
};

beforeEach(async () => {
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logLines.push(JSON.parse(line));
      cb();
    },
  });
  registry = new Registry();
  h = await startServer({ logger: pino({ level: 'warn' }, sink), registry, nackHistory: 3 });
  client = new XdsTestClient(h.address);
  enc = new ResourceEncoder();
  h.cache.setSnapshot('default', meshSnapshot(enc, mesh1));
  nackEvents.length = 0;
  ackEvents.length = 0;
  diagnosticsChannel.subscribe(XdsChannelName.Nack, onNack);
  diagnosticsChannel.subscribe(XdsChannelName.Ack, onAck);
});

afterEach(async () => {
  diagnosticsChannel.unsubscribe(XdsChannelName.Nack, onNack);
  diagnosticsChannel.unsubscribe(XdsChannelName.Ack, onAck);
  client.close();
  await h.close();
});

async function nackCount(type: string): Promise<number> {
  const metric = registry.getSingleMetric('skein_xds_nacks_total');
  if (metric === undefined) throw new Error('metric skein_xds_nacks_total not registered');
  return (await metric.get()).values.find((v) => v.labels['type'] === type)?.value ?? 0;
}

describe('NACK', () => {
  it('SotW: records the NACK and does not resend until the listeners change', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    s.send({ typeUrl: TypeUrl.Listener });
    const cds = await s.next();
    const lds = await s.next();
    expect(lds.typeUrl).toBe(TypeUrl.Listener);
    s.send({ typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });
    s.send({
      typeUrl: TypeUrl.Listener,
      versionInfo: '',
      responseNonce: lds.nonce,
      errorDetail: { code: 13, message: 'Error adding/updating listener(s) l1: bad filter' },
    });
    // No resend loop.
    await s.expectQuiet(200);

    const status = h.server.status();
    const expected = {
      nodeId: 'envoy-nack',
      group: 'default',
      typeUrl: TypeUrl.Listener,
      type: 'LDS',
      nonce: lds.nonce,
      version: lds.versionInfo,
      keptVersion: null,
      code: 13,
      message: 'Error adding/updating listener(s) l1: bad filter',
    };
    expect(status.nacks).toEqual([expect.objectContaining(expected)]);
    expect(Date.parse(status.nacks[0]?.time ?? '')).toBeGreaterThan(Date.now() - 10_000);
    const ldsStatus = status.streams[0]?.types.find((t) => t.type === 'LDS');
    expect(ldsStatus).toMatchObject({ ackedVersion: null, sentVersion: lds.versionInfo, pendingNonce: null });
    expect(ldsStatus?.lastNack).toMatchObject(expected);
    expect(await nackCount('LDS')).toBe(1);
    expect(await nackCount('CDS')).toBe(0);
    expect(nackEvents).toEqual([expect.objectContaining(expected)]);
    expect(ackEvents.map((e) => [e.type, e.version])).toEqual([['CDS', cds.versionInfo]]);
    expect(logLines).toEqual([
      expect.objectContaining({
        level: 40,
        code: 'SKEIN_XDS_NACK',
        type: 'LDS',
        node: 'envoy-nack',
        error: 'Error adding/updating listener(s) l1: bad filter',
      }),
    ]);

    // A change to another type goes out; the rejected listeners still do not.
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 } }));
    const cds2 = await s.next();
    expect(cds2.typeUrl).toBe(TypeUrl.Cluster);
    s.send({ typeUrl: TypeUrl.Cluster, versionInfo: cds2.versionInfo, responseNonce: cds2.nonce });
    await s.expectQuiet(150);

    // New listener config: sent, and its ACK clears the stream's lastNack (the history keeps it).
    h.cache.setSnapshot(
      'default',
      meshSnapshot(enc, {
        ...mesh1,
        clusters: { a: 8001, b: 8002, c: 8003 },
        listeners: { l1: { port: 10001, route: 'rc' } },
      }),
    );
    const lds2 = await s.next();
    expect(lds2.typeUrl).toBe(TypeUrl.Listener);
    expect(lds2.versionInfo).not.toBe(lds.versionInfo);
    s.send({ typeUrl: TypeUrl.Listener, versionInfo: lds2.versionInfo, responseNonce: lds2.nonce });
    await s.until(
      () =>
        h.server.status().streams[0]?.types.find((t) => t.type === 'LDS')?.ackedVersion === lds2.versionInfo,
      2000,
      'the LDS ACK',
    );
    expect(h.server.status().streams[0]?.types.find((t) => t.type === 'LDS')?.lastNack).toBeNull();
    expect(h.server.status().nacks).toHaveLength(1);
    expect(s.violations).toEqual([]);
  });

  it('delta: the client keeps its last accepted state; a rejected resource goes out again only once it changes', async () => {
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    const r1 = await s.next();
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r1.nonce });
    h.cache.setSnapshot('default', meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 } }));
    const r2 = await s.next();
    expect(r2.resources.map((r) => r.name)).toEqual(['c']);
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r2.nonce, errorDetail: { message: 'cluster c: bad' } });
    await s.expectQuiet(200);
    expect(h.server.status().nacks[0]).toMatchObject({
      type: 'CDS',
      nonce: r2.nonce,
      version: r2.systemVersionInfo,
      keptVersion: r1.systemVersionInfo,
      message: 'cluster c: bad',
    });
    expect(h.server.status().streams[0]?.types[0]).toMatchObject({
      resourceCount: 2,
      ackedVersion: r1.systemVersionInfo,
    });

    // An unrelated change sends d, but not the rejected c: c is unchanged, so it would be rejected again.
    h.cache.setSnapshot(
      'default',
      meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003, d: 8004 } }),
    );
    const r3 = await s.next();
    expect(r3.resources.map((r) => r.name).sort()).toEqual(['d']);
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r3.nonce });
    await s.expectQuiet(100);
    // Once c itself changes, it goes out again.
    const fixedC = enc.encode({
      ...clusterSpec('c'),
      message: { ...clusterSpec('c').message, connectTimeout: { seconds: 2 } },
    });
    h.cache.setSnapshot(
      'default',
      createSnapshot([
        ...meshResources(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003, d: 8004 } }).filter(
          (r) => !(r.typeUrl === TypeUrl.Cluster && r.name === 'c'),
        ),
        fixedC,
      ]),
    );
    const r4 = await s.next();
    expect(r4.resources.map((r) => r.name)).toEqual(['c']);
    s.send({ typeUrl: TypeUrl.Cluster, responseNonce: r4.nonce });
    await s.expectQuiet(100);
    expect(await nackCount('CDS')).toBe(1);
    expect(s.violations).toEqual([]);
  });

  it('keeps withholding dependent routes while their cluster is rejected', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    const cds = await s.next();
    s.send({ typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a', 'b'] });
    const eds = await s.next();
    s.send({
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNames: ['a', 'b'],
      versionInfo: eds.versionInfo,
      responseNonce: eds.nonce,
    });
    s.send({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['rc'] });
    const rds = await s.next();
    s.send({
      typeUrl: TypeUrl.RouteConfiguration,
      resourceNames: ['rc'],
      versionInfo: rds.versionInfo,
      responseNonce: rds.nonce,
    });
    await s.expectQuiet(100);
    // rc moves to a new cluster c; the CDS response adding c is rejected.
    h.cache.setSnapshot(
      'default',
      meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, c: 8003 }, routes: { rc: ['c'] } }),
    );
    const cds2 = await s.next();
    expect(cds2.typeUrl).toBe(TypeUrl.Cluster);
    s.send({
      typeUrl: TypeUrl.Cluster,
      versionInfo: cds.versionInfo,
      responseNonce: cds2.nonce,
      errorDetail: { message: 'no' },
    });
    // rc must not move to a cluster the client refused.
    await s.expectQuiet(200);
    expect(s.violations).toEqual([]);
  });

  it('keeps a bounded history', async () => {
    const s = client.delta();
    s.send({ typeUrl: TypeUrl.Cluster, node });
    let r = await s.next();
    for (let i = 0; i < 4; i++) {
      s.send({
        typeUrl: TypeUrl.Cluster,
        responseNonce: r.nonce,
        errorDetail: { message: `rejection ${i}` },
      });
      h.cache.setSnapshot(
        'default',
        meshSnapshot(enc, { ...mesh1, clusters: { a: 8001, b: 8002, [`n${i}`]: 9000 + i } }),
      );
      r = await s.next();
    }
    expect(h.server.status().nacks.map((n) => n.message)).toEqual([
      'rejection 1',
      'rejection 2',
      'rejection 3',
    ]);
    expect(await nackCount('CDS')).toBe(4);
  });
});
