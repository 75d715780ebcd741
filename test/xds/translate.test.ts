import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { validate } from '../../src/model/validate.js';
import { decodeAny, encodeAny, TypeUrl, typeShortName } from '../../src/xds/proto.js';
import { ResourceEncoder, type ResourceKey, type ResourceSpec } from '../../src/xds/resource.js';
import { checkConsistency, createSnapshot } from '../../src/xds/snapshot.js';
import { translateIr } from '../../src/xds/translate/translate.js';
import { loadCases, TESTDATA } from './translateCases.js';

/**
 * Golden tests: `testdata/<case>.ir.yaml` → one file per resource type, so that a diff shows where a
 * change landed. Update with `npx vitest run test/xds/translate.test.ts -u`, then review by eye.
 */

const FILE_OF_TYPE: Record<TypeUrl, string> = {
  [TypeUrl.Listener]: 'listeners',
  [TypeUrl.RouteConfiguration]: 'routes',
  [TypeUrl.Cluster]: 'clusters',
  [TypeUrl.ClusterLoadAssignment]: 'endpoints',
  [TypeUrl.Secret]: 'secrets',
};

function keyString(k: ResourceKey): string {
  return `${typeShortName[k.typeUrl]} ${k.name}`;
}

function render(specs: readonly ResourceSpec[]): string {
  const docs = specs.map((s) => ({
    name: s.name,
    deps: s.deps.map(keyString),
    children: s.children.map(keyString),
    message: s.message,
  }));
  return stringify(docs, { lineWidth: 0, aliasDuplicateObjects: false });
}

/** JSON round trip: drops `undefined` and turns class instances into plain data, as decodeAny returns. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

describe.each(loadCases())('golden $name ($flavor)', ({ name, flavor, ir }) => {
  const specs = translateIr(ir, { flavor });

  it('is a valid IR', () => {
    expect(validate(ir)).toEqual([]);
  });

  it.each(Object.entries(FILE_OF_TYPE))('matches %s golden file', async (typeUrl, suffix) => {
    const file = path.join(TESTDATA, `${name}.${suffix}.yaml`);
    const ofType = specs.filter((s) => s.typeUrl === typeUrl);
    if (ofType.length === 0) {
      // Goldens exist only where there is content; a leftover file means the output changed.
      expect(existsSync(file), `${file} has no resources to hold and should be deleted`).toBe(false);
      return;
    }
    await expect(render(ofType)).toMatchFileSnapshot(file);
  });

  it('encodes every resource, losing nothing', () => {
    for (const s of specs) {
      // encodeAny throws on a field the message type does not have; decoding back and comparing catches
      // anything protobufjs would drop silently (wrong value types, two members of one oneof).
      const decoded = decodeAny(encodeAny(s.typeUrl, s.message));
      expect(decoded.typeUrl).toBe(s.typeUrl);
      expect(decoded.message, `${s.typeUrl} ${s.name}`).toEqual(plain(s.message));
    }
  });

  it('names each resource after its message and passes the publish-path consistency check', () => {
    for (const s of specs) {
      const nameField = s.typeUrl === TypeUrl.ClusterLoadAssignment ? 'clusterName' : 'name';
      expect(s.message[nameField]).toBe(s.name);
    }
    const encoder = new ResourceEncoder();
    const snapshot = createSnapshot(specs.map((s) => encoder.encode(s)));
    expect(checkConsistency(snapshot)).toEqual([]);
  });

  it('is deterministic and sorted by type, then name', () => {
    expect(translateIr(ir, { flavor })).toEqual(specs);
    const order = Object.keys(FILE_OF_TYPE);
    const keys = specs.map((s) => [order.indexOf(s.typeUrl), s.name] as const);
    const sorted = [...keys].sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
    expect(keys).toEqual(sorted);
  });
});
