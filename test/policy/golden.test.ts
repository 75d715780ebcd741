import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { translatePolicy } from '../../src/policy/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet } from '../../src/sources/objects.js';

/**
 * Golden files: testdata/<case>.in.yaml (Namespaces, Pods, NetworkPolicies) → testdata/<case>.out.yaml
 * (diagnostics and the policy IR) for node-1, whose pods' host-side interfaces are named `lxc-<ns>-<pod>`.
 * Cases are named after the upstream NetworkPolicy e2e tests (test/e2e/network/netpol) they mirror.
 * `npx vitest run -u test/policy` rewrites the outputs; review the diff by eye before committing.
 */
const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const IN = '.in.yaml';
const OUT = '.out.yaml';
const NODE = 'node-1';
const NODE_ADDRESS = '192.168.0.1';

const cases = readdirSync(testdata)
  .filter((f) => f.endsWith(IN))
  .map((f) => f.slice(0, -IN.length))
  .sort();

function load(name: string): { objects: ObjectSet; problems: string[] } {
  const cache = new FileCache();
  cache.update(`${name}${IN}`, readFileSync(path.join(testdata, `${name}${IN}`), 'utf8'));
  const { objects, diagnostics } = cache.snapshot();
  return {
    objects,
    problems: diagnostics.map((d) => `${d.code} ${d.object ?? ''} ${d.field ?? ''}: ${d.message}`),
  };
}

/** The interfaces the node would have: one per pod of node-1, by pod address. */
function interfaces(objects: ObjectSet): Map<string, string> {
  const out = new Map<string, string>();
  for (const pod of objects.pods) {
    if (pod.spec?.nodeName !== NODE || pod.metadata?.annotations?.['test.skein.io/no-interface'] === 'true')
      continue;
    for (const ip of pod.status?.podIPs ?? []) {
      if (ip.ip !== undefined)
        out.set(ip.ip, `lxc-${pod.metadata?.namespace}-${pod.metadata?.name}`.slice(0, 15));
    }
  }
  return out;
}

function render(name: string, objects: ObjectSet): string {
  const { ir, diagnostics } = translatePolicy(objects, {
    nodeName: NODE,
    nodeAddresses: [NODE_ADDRESS],
    interfaces: interfaces(objects),
  });
  const body = stringify({ diagnostics, ir }, { aliasDuplicateObjects: false, lineWidth: 0 });
  return `# Generated from ${name}${IN} by test/policy/golden.test.ts; \`npx vitest run -u test/policy\` rewrites it.\n${body}`;
}

describe('NetworkPolicy translation golden files', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(12);
  });

  it.each(cases)('%s', async (name) => {
    const { objects, problems } = load(name);
    // Inputs are objects the API server would accept; anything else belongs in the source tests.
    expect(problems).toEqual([]);
    await expect(render(name, objects)).toMatchFileSnapshot(path.join(testdata, `${name}${OUT}`));
  });

  it('every output has an input', () => {
    const outputs = readdirSync(testdata).filter((f) => f.endsWith(OUT));
    expect(outputs.filter((f) => !cases.includes(f.slice(0, -OUT.length)))).toEqual([]);
  });

  it('is deterministic: the same input gives the same bytes, whatever the order of the objects', () => {
    for (const name of cases) {
      const { objects } = load(name);
      const shuffled: ObjectSet = {
        ...objects,
        pods: [...objects.pods].reverse(),
        networkPolicies: [...objects.networkPolicies].reverse(),
        namespaces: [...objects.namespaces].reverse(),
      };
      expect(render(name, shuffled), name).toBe(render(name, objects));
    }
  });
});
