import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { validateServices } from '../../src/model/serviceLb.js';
import { createServicesTranslator, translateServices } from '../../src/services/translate.js';
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

describe('the memoised services translator', () => {
  it('gives what translateServices gives, for every case', () => {
    for (const name of cases) {
      const { objects } = load(name);
      expect(createServicesTranslator().translate(objects), name).toEqual(translateServices(objects));
    }
  });

  it('translates again only the Services whose object or slices changed', () => {
    const { objects } = load(cases[0] ?? '');
    const t = createServicesTranslator();
    const first = t.translate(objects);
    const svc = objects.services[0];
    if (svc === undefined || first.ir.services.length < 2)
      throw new Error('the first case needs two IR services');
    const edited = {
      ...svc,
      metadata: { ...svc.metadata, annotations: { 'service.skein.io/lb-algorithm': 'maglev' } },
    };
    const second = t.translate({
      ...objects,
      services: objects.services.map((s) => (s === svc ? edited : s)),
    });
    const name = `${svc.metadata?.namespace ?? 'default'}/${svc.metadata?.name}/`;
    expect(second.ir.services.filter((s) => s.name.startsWith(name)).length).toBeGreaterThan(0);
    expect(second.ir.services.filter((s) => !s.name.startsWith(name)).length).toBeGreaterThan(0);
    for (const s of second.ir.services) {
      const before = first.ir.services.find((b) => b.name === s.name && b.address === s.address);
      if (s.name.startsWith(name)) {
        expect(s).not.toBe(before);
        expect(s.algorithm).toBe('maglev');
      } else expect(s).toBe(before);
    }
    // Unchanged input: every IR service is the one of the last call.
    const third = t.translate({
      ...objects,
      services: objects.services.map((s) => (s === svc ? edited : s)),
    });
    expect(third.ir.services).toHaveLength(second.ir.services.length);
    for (const [i, s] of third.ir.services.entries()) expect(s).toBe(second.ir.services[i]);
  });
});
