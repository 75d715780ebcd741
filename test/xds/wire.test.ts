import { describe, expect, it } from 'vitest';
import { encodeAny, messageType, TypeUrl } from '../../src/xds/proto.js';
import { ResourceEncoder } from '../../src/xds/resource.js';
import {
  decodeDeltaRequest,
  decodeSotwRequest,
  encodeDeltaResponse,
  encodeSotwResponse,
  spliceRepeated,
} from '../../src/xds/wire.js';
import { encodeDeltaRequest, encodeSotwRequest } from '../helpers/adsClient.js';
import { secretSpec } from './serverFixtures.js';

const DISCOVERY = 'envoy.service.discovery.v3';

/** Secrets of very different sizes, so the length prefixes take one, two, three and four bytes. */
function resources() {
  const enc = new ResourceEncoder();
  return [1, 100, 20_000, 3_000_000].map((n) => enc.encode(secretSpec(`s${n}`, 'x'.repeat(n))));
}

describe('response assembly from pre-encoded resources', () => {
  it('builds a DiscoveryResponse that protobufjs decodes to the same header and resources', () => {
    const rs = resources();
    const bytes = encodeSotwResponse(
      { versionInfo: 'v1', typeUrl: TypeUrl.Secret, nonce: '7', controlPlane: 'skein-test' },
      rs.map((r) => r.any),
    );
    const type = messageType(`${DISCOVERY}.DiscoveryResponse`);
    const m = type.toObject(type.decode(bytes), { defaults: true }) as {
      versionInfo: string;
      typeUrl: string;
      nonce: string;
      controlPlane: { identifier: string };
      resources: Array<{ type_url: string; value: Uint8Array }>;
    };
    expect(m.versionInfo).toBe('v1');
    expect(m.typeUrl).toBe(TypeUrl.Secret);
    expect(m.nonce).toBe('7');
    expect(m.controlPlane.identifier).toBe('skein-test');
    expect(m.resources).toHaveLength(rs.length);
    const any = messageType('google.protobuf.Any');
    for (const [i, r] of rs.entries()) {
      expect(m.resources[i]?.type_url).toBe(TypeUrl.Secret);
      expect(Buffer.from(any.encode(m.resources[i] ?? {}).finish()).equals(Buffer.from(r.any))).toBe(true);
    }
    // The resources are spliced in verbatim.
    for (const r of rs) expect(bytes.includes(Buffer.from(r.any))).toBe(true);
  });

  it('builds a DeltaDiscoveryResponse with removals that protobufjs decodes', () => {
    const rs = resources();
    const bytes = encodeDeltaResponse(
      { systemVersionInfo: 'sv', typeUrl: TypeUrl.Secret, nonce: '9', removedResources: ['old1', 'old2'] },
      rs.map((r) => r.deltaResource),
    );
    const type = messageType(`${DISCOVERY}.DeltaDiscoveryResponse`);
    const m = type.toObject(type.decode(bytes), { defaults: true }) as {
      systemVersionInfo: string;
      typeUrl: string;
      nonce: string;
      removedResources: string[];
      resources: Array<{ name: string; version: string; resource: { type_url: string; value: Uint8Array } }>;
    };
    expect([m.systemVersionInfo, m.typeUrl, m.nonce]).toEqual(['sv', TypeUrl.Secret, '9']);
    expect(m.removedResources).toEqual(['old1', 'old2']);
    expect(m.resources.map((r) => [r.name, r.version])).toEqual(rs.map((r) => [r.name, r.version]));
    const secret = messageType(TypeUrl.Secret);
    const decoded = secret.toObject(secret.decode(m.resources[1]?.resource.value ?? new Uint8Array())) as {
      name: string;
    };
    expect(decoded.name).toBe('s100');
  });

  it('leaves the header alone when there is nothing to splice, and matches protobufjs byte for byte', () => {
    const head = Buffer.from([0x0a, 0x02, 0x76, 0x31]);
    expect(spliceRepeated(head, 2, []).equals(head)).toBe(true);
    const any = encodeAny(TypeUrl.Secret, { name: 'x' });
    const type = messageType(`${DISCOVERY}.DiscoveryResponse`);
    const viaProtobufjs = type
      .encode({
        versionInfo: 'v',
        typeUrl: TypeUrl.Secret,
        nonce: '1',
        resources: [messageType('google.protobuf.Any').decode(any)],
      })
      .finish();
    const ours = encodeSotwResponse({ versionInfo: 'v', typeUrl: TypeUrl.Secret, nonce: '1' }, [any]);
    // Same fields; protobufjs writes them in field order, we write resources last, so compare decoded.
    expect(type.toObject(type.decode(ours))).toEqual(type.toObject(type.decode(viaProtobufjs)));
  });
});

describe('request decoding', () => {
  it('decodes a DiscoveryRequest with node, names and error detail', () => {
    const bytes = encodeSotwRequest({
      typeUrl: TypeUrl.Cluster,
      versionInfo: 'v3',
      resourceNames: ['a', 'b'],
      responseNonce: '4',
      errorDetail: { code: 13, message: 'bad cluster' },
      node: { id: 'n1', cluster: 'c1', userAgentName: 'envoy' },
    });
    const d = decodeSotwRequest(bytes);
    expect(d).toEqual({
      ok: true,
      request: {
        versionInfo: 'v3',
        node: { id: 'n1', cluster: 'c1', userAgentName: 'envoy', metadata: {} },
        resourceNames: ['a', 'b'],
        typeUrl: TypeUrl.Cluster,
        responseNonce: '4',
        errorDetail: { code: 13, message: 'bad cluster' },
      },
    });
  });

  it('turns node metadata (a Struct) into plain JSON', () => {
    const type = messageType(`${DISCOVERY}.DiscoveryRequest`);
    const bytes = type
      .encode(
        type.fromObject({
          node: {
            id: 'n',
            metadata: {
              fields: {
                zone: { stringValue: 'z1' },
                weight: { numberValue: 3 },
                on: { boolValue: true },
                tags: { listValue: { values: [{ stringValue: 'x' }, { nullValue: 'NULL_VALUE' }] } },
                nested: { structValue: { fields: { k: { stringValue: 'v' } } } },
              },
            },
          },
        }),
      )
      .finish();
    const d = decodeSotwRequest(bytes);
    if (!d.ok) throw new Error(d.error);
    expect(d.request.node?.metadata).toEqual({
      zone: 'z1',
      weight: 3,
      on: true,
      tags: ['x', null],
      nested: { k: 'v' },
    });
    expect(d.request.errorDetail).toBeUndefined();
  });

  it('decodes a DeltaDiscoveryRequest with initial_resource_versions', () => {
    const d = decodeDeltaRequest(
      encodeDeltaRequest({
        typeUrl: TypeUrl.ClusterLoadAssignment,
        subscribe: ['a'],
        unsubscribe: ['b'],
        initialResourceVersions: { a: 'v1', c: 'v2' },
        responseNonce: '3',
      }),
    );
    if (!d.ok) throw new Error(d.error);
    expect(d.request.resourceNamesSubscribe).toEqual(['a']);
    expect(d.request.resourceNamesUnsubscribe).toEqual(['b']);
    expect([...d.request.initialResourceVersions]).toEqual([
      ['a', 'v1'],
      ['c', 'v2'],
    ]);
    expect(d.request.responseNonce).toBe('3');
    expect(d.request.node).toBeUndefined();
  });

  it('reports malformed bytes instead of throwing', () => {
    // Field 1 with wire type 7, which does not exist.
    const garbage = Buffer.from([0x0f, 0x00, 0x01]);
    // type_url (field 4 / field 2) claiming 16 bytes where there is one.
    const truncated = [Buffer.from([0x22, 0x10, 0x61]), Buffer.from([0x12, 0x10, 0x61])] as const;
    for (const [sotwBytes, deltaBytes] of [[garbage, garbage], truncated] as const) {
      const sotw = decodeSotwRequest(sotwBytes);
      const delta = decodeDeltaRequest(deltaBytes);
      expect(sotw.ok).toBe(false);
      expect(delta.ok).toBe(false);
      if (!sotw.ok) expect(sotw.error).toMatch(/wire type|overruns/i);
    }
  });
});
