// values.yaml and values.schema.json of the chart agree: every value is documented with a `# --`
// comment and described by the schema, every schema property is a value, and the versions the chart
// pins are the ones Skein uses.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMap, isScalar, parseDocument, type YAMLMap } from 'yaml';
import { ENVOY_VERSION } from '../../src/envoy/findEnvoy.js';
import { GATEWAY_API_VERSION } from '../harness/kubeBinaries.js';
import { CHART_DIR, ROOT } from './chart.js';

interface Schema {
  readonly $ref?: string;
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly additionalProperties?: boolean | Schema;
  readonly required?: readonly string[];
  readonly $defs?: Readonly<Record<string, Schema>>;
}

/** Keys Helm adds to every chart's values (`global`) and one per subchart; not values of ours. */
const HELM_KEYS = new Set(['global', 'gateway-api-crds']);

async function load(): Promise<{ values: YAMLMap; schema: Schema; text: string }> {
  const text = await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8');
  const doc = parseDocument(text);
  if (!isMap(doc.contents)) throw new Error('values.yaml is not a mapping');
  const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as Schema;
  return { values: doc.contents, schema, text };
}

function resolve(root: Schema, s: Schema): Schema {
  if (s.$ref === undefined) return s;
  const name = /^#\/\$defs\/(.+)$/.exec(s.$ref)?.[1];
  const target = name === undefined ? undefined : root.$defs?.[name];
  if (target === undefined) throw new Error(`unresolved $ref ${s.$ref}`);
  return target;
}

interface Leaf {
  readonly path: string;
  /** Its own `# --` comment, or that of an enclosing mapping documented as one value. */
  readonly documented: boolean;
}

interface Walk {
  readonly leaves: Leaf[];
  readonly notInSchema: string[];
  readonly notInValues: string[];
  /** Groups whose schema accepts unknown keys. */
  readonly open: string[];
}

/** A group of chart values: the schema lists its properties and requires every one of them. */
function isGroup(s: Schema): boolean {
  const keys = Object.keys(s.properties ?? {});
  return keys.length > 0 && keys.every((k) => s.required?.includes(k) === true);
}

const hasDocComment = (comment: string): boolean => comment.split('\n').some((l) => /^ ?-- \S/.test(l));

/**
 * Walks values.yaml beside the schema. Groups (such as `agent`) are descended into, and must match the
 * schema both ways; anything else is one value (a free-form map like `nodeSelector`, a Kubernetes
 * object like `resources`), whose keys the schema must still know when it lists them.
 */
function walk(
  root: Schema,
  map: YAMLMap,
  schema: Schema,
  prefix: string,
  inherited: boolean,
  out: Walk,
): void {
  const props = schema.properties ?? {};
  const seen = new Set<string>();
  map.items.forEach((pair, index) => {
    const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
    const at = `${prefix}${key}`;
    seen.add(key);
    const sub = props[key];
    if (sub === undefined) {
      if (schema.additionalProperties === false || isGroup(schema)) out.notInSchema.push(at);
      return;
    }
    const s = resolve(root, sub);
    // The comment before the first key of a mapping belongs to the mapping.
    const comment =
      (isScalar(pair.key) ? pair.key.commentBefore : undefined) ??
      (index === 0 ? (map.commentBefore ?? undefined) : undefined) ??
      '';
    const documented = inherited || hasDocComment(comment);
    if (isGroup(s) && isMap(pair.value)) {
      if (s.additionalProperties !== false) out.open.push(at);
      walk(root, pair.value, s, `${at}.`, documented, out);
      return;
    }
    out.leaves.push({ path: at, documented });
    if (isMap(pair.value) && s.properties !== undefined) walk(root, pair.value, s, `${at}.`, true, out);
  });
  if (!isGroup(schema)) return;
  for (const key of Object.keys(props)) {
    if (!seen.has(key) && !(prefix === '' && HELM_KEYS.has(key))) out.notInValues.push(`${prefix}${key}`);
  }
}

async function walkValues(): Promise<{ out: Walk; schema: Schema }> {
  const { values, schema } = await load();
  const out: Walk = { leaves: [], notInSchema: [], notInValues: [], open: [] };
  // The root is a group too; Helm's own keys aside.
  walk(schema, values, { ...schema, required: Object.keys(schema.properties ?? {}) }, '', false, out);
  return { out, schema };
}

describe('the chart values', () => {
  it('are each in values.schema.json, every schema property is a value, and groups reject unknown keys', async () => {
    const { out, schema } = await walkValues();
    expect(out.notInSchema).toEqual([]);
    expect(out.notInValues).toEqual([]);
    // additionalProperties: false on every group, so a misspelt key (encryption.enable) is an error.
    expect(out.open).toEqual([]);
    expect(schema.additionalProperties).toBe(false);
    // The walk reached the values (not a vacuous pass): the toggles and a few nested ones.
    expect(out.leaves.map((l) => l.path)).toEqual(
      expect.arrayContaining([
        'gatewayAPI.installCRDs',
        'encryption.enabled',
        'encryption.type',
        'l7Proxy',
        'kubeProxyReplacement',
        'agent.capabilities',
        'agent.bpf.hostRoot',
        'agent.resources',
        'agent.resources.requests',
        'operator.leaderElection.leaseDuration',
        'envoy.image.tag',
      ]),
    );
    expect(out.leaves.length).toBeGreaterThan(60);
  });

  it('are each documented with a `# --` comment (their own, or that of the value they are part of)', async () => {
    const { out } = await walkValues();
    expect(out.leaves.filter((l) => !l.documented).map((l) => l.path)).toEqual([]);
  });

  it('schema makes the feature toggles booleans and an enum, and requires every group', async () => {
    const { schema } = await load();
    const p = schema.properties ?? {};
    expect(p['l7Proxy']).toEqual({ type: 'boolean' });
    expect(p['kubeProxyReplacement']).toEqual({ type: 'boolean' });
    expect(p['encryption']?.properties?.['enabled']).toEqual({ type: 'boolean' });
    expect(p['encryption']?.properties?.['type']).toEqual({ enum: ['wireguard'] });
    expect(p['gatewayAPI']?.properties?.['installCRDs']).toEqual({ type: 'boolean' });
    expect([...(schema.required ?? [])].sort()).toEqual(
      Object.keys(p)
        .filter((k) => !HELM_KEYS.has(k))
        .sort(),
    );
  });

  it('pin the Envoy Skein runs, the Gateway API version setup copies, and the package version', async () => {
    const { text } = await load();
    const doc = parseDocument(text).toJS() as { envoy: { image: { tag: string } } };
    expect(doc.envoy.image.tag).toBe(`v${ENVOY_VERSION}`);
    const chart = parseDocument(await readFile(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')).toJS() as {
      appVersion: string;
      dependencies: { name: string; version: string; condition: string }[];
    };
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(chart.appVersion).toBe(pkg.version);
    expect(chart.dependencies).toEqual([
      { name: 'gateway-api-crds', version: GATEWAY_API_VERSION, condition: 'gatewayAPI.installCRDs' },
    ]);
    const sub = parseDocument(
      await readFile(path.join(CHART_DIR, 'charts/gateway-api-crds/Chart.yaml'), 'utf8'),
    ).toJS() as { version: string; appVersion: string };
    expect(sub).toMatchObject({ version: GATEWAY_API_VERSION, appVersion: `v${GATEWAY_API_VERSION}` });
  });
});
