import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { validateServices } from '../../src/model/serviceLb.js';
import { translateServices } from '../../src/services/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet } from '../../src/sources/objects.js';

/**
 * Golden files: testdata/<case>.in.yaml (Services and EndpointSlices) → testdata/<case>.out.yaml
 * (diagnostics and the services IR). `npx vitest run -u test/services` rewrites the outputs; review the
 * diff by eye before committing.
 */
const testdata = path.join(import.meta.dirname, 'testdata');
const IN = '.in.yaml';
const OUT = '.out.yaml';

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

function render(name: string, objects: ObjectSet): string {
  const result = translateServices(objects);
  const body = stringify(
    { diagnostics: result.diagnostics, ir: result.ir },
    { aliasDuplicateObjects: false, lineWidth: 0 },
  );
  return `# Generated from ${name}${IN} by test/services/golden.test.ts; \`npx vitest run -u test/services\` rewrites it.\n${body}`;
}

describe('Service + EndpointSlice → services IR golden files', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(6);
  });

  it.each(cases)('%s', async (name) => {
    const { objects, problems } = load(name);
    // Inputs are objects the API server would accept; anything else belongs in the source tests.
    expect(problems).toEqual([]);
    const ir = translateServices(objects).ir;
    expect(validateServices(ir)).toEqual([]);
    await expect(render(name, objects)).toMatchFileSnapshot(path.join(testdata, `${name}${OUT}`));
  });

  it('every output has an input', () => {
    const outputs = readdirSync(testdata).filter((f) => f.endsWith(OUT));
    expect(outputs.filter((f) => !cases.includes(f.slice(0, -OUT.length)))).toEqual([]);
  });

  it('is deterministic: the same input in another order gives the same bytes', () => {
    for (const name of cases) {
      const { objects } = load(name);
      const reversed = {
        ...objects,
        services: [...objects.services].reverse(),
        endpointSlices: [...objects.endpointSlices].reverse(),
      };
      expect(render(name, reversed)).toBe(render(name, objects));
    }
  });
});
