import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  createGatewayTranslator,
  type GatewayResult,
  translateGateway,
} from '../../src/gateway/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet } from '../../src/sources/objects.js';

/**
 * Golden files: testdata/<case>.in.yaml (Kubernetes objects) → testdata/<case>.out.yaml (statuses,
 * diagnostics and IR). Cases are named after the Gateway API conformance tests they mirror.
 * `npx vitest run -u test/gateway` rewrites the outputs; review the diff by eye before committing.
 */
const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const IN = '.in.yaml';
const OUT = '.out.yaml';
const TIME = '2024-01-01T00:00:00Z';

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

function render(name: string, result: GatewayResult): string {
  const body = stringify(
    { statuses: result.statuses, diagnostics: result.diagnostics, ir: result.ir },
    { aliasDuplicateObjects: false, lineWidth: 0 },
  );
  return `# Generated from ${name}${IN} by test/gateway/golden.test.ts; \`npx vitest run -u test/gateway\` rewrites it.\n${body}`;
}

describe('Gateway API translation golden files', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(17);
  });

  it.each(cases)('%s', async (name) => {
    const { objects, problems } = load(name);
    // Inputs are objects the API server would accept; anything else belongs in the source tests.
    expect(problems).toEqual([]);
    const out = render(name, translateGateway(objects, { transitionTime: TIME }));
    await expect(out).toMatchFileSnapshot(path.join(testdata, `${name}${OUT}`));
  });

  it('every output has an input', () => {
    const outputs = readdirSync(testdata).filter((f) => f.endsWith(OUT));
    const orphans = outputs.filter((f) => !cases.includes(f.slice(0, -OUT.length)));
    expect(orphans).toEqual([]);
  });

  it('is deterministic: the same input gives the same bytes, from a fresh or a warm translator', () => {
    const warm = createGatewayTranslator();
    for (const name of cases) {
      const { objects } = load(name);
      const first = render(name, translateGateway(objects, { transitionTime: TIME }));
      const again = render(name, translateGateway(load(name).objects, { transitionTime: TIME }));
      warm.translate(objects, { transitionTime: TIME });
      const fromWarm = render(name, warm.translate(objects, { transitionTime: TIME }));
      expect(again).toBe(first);
      expect(fromWarm).toBe(first);
    }
  });
});
