import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  createIngressTranslator,
  type IngressConfig,
  type IngressResult,
  translateIngress,
} from '../../src/ingress/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet } from '../../src/sources/objects.js';

/**
 * Golden files: testdata/<case>.in.yaml (Kubernetes objects) → testdata/<case>.out.yaml (statuses,
 * diagnostics and IR). A first line `# options: {...}` gives the case IngressConfig options (JSON).
 * `npx vitest run -u test/ingress` rewrites the outputs; review the diff by eye before committing.
 */
const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const IN = '.in.yaml';
const OUT = '.out.yaml';
const TIME = '2024-01-01T00:00:00Z';

const cases = readdirSync(testdata)
  .filter((f) => f.endsWith(IN))
  .map((f) => f.slice(0, -IN.length))
  .sort();

function load(name: string): { objects: ObjectSet; problems: string[]; options: IngressConfig } {
  const text = readFileSync(path.join(testdata, `${name}${IN}`), 'utf8');
  const cache = new FileCache();
  cache.update(`${name}${IN}`, text);
  const { objects, diagnostics } = cache.snapshot();
  const m = /^# options: (.*)$/m.exec(text);
  return {
    objects,
    problems: diagnostics.map((d) => `${d.code} ${d.object ?? ''} ${d.field ?? ''}: ${d.message}`),
    options: m === null ? {} : (JSON.parse(m[1] ?? '{}') as IngressConfig),
  };
}

function render(name: string, result: IngressResult): string {
  const body = stringify(
    { statuses: result.statuses, diagnostics: result.diagnostics, ir: redact(result.ir) },
    { aliasDuplicateObjects: false, lineWidth: 0 },
  );
  return `# Generated from ${name}${IN} by test/ingress/golden.test.ts; \`npx vitest run -u test/ingress\` rewrites it.\n${body}`;
}

/** Certificates and keys are long and say nothing a reviewer can check by eye. */
function redact(ir: IngressResult['ir']): unknown {
  return {
    ...ir,
    secrets: ir.secrets.map((s) => ({ name: s.name, certificateChain: '[pem]', privateKey: '[redacted]' })),
  };
}

/**
 * Whether this run rewrites snapshots (`-u`). Without it vitest still writes a missing file snapshot
 * (outside CI). Vitest keeps the mode in its snapshot state, not in a public API; should that field go,
 * this says false and a missing output fails, which is the safe side.
 */
function rewriting(): boolean {
  return (
    (expect.getState().snapshotState as unknown as { _updateSnapshot?: string })._updateSnapshot === 'all'
  );
}

describe('Ingress translation golden files', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
  });

  it.each(cases)('%s', async (name) => {
    // A new case's output is written by `-u` and reviewed, never made up silently by a plain run.
    const outFile = path.join(testdata, `${name}${OUT}`);
    if (!existsSync(outFile) && !rewriting()) {
      expect.fail(`${name}${OUT} is missing: run \`npx vitest run -u test/ingress\` and review it`);
    }
    const { objects, problems, options } = load(name);
    // Inputs are objects the API server would accept; anything else belongs in the source tests.
    expect(problems).toEqual([]);
    const out = render(name, translateIngress(objects, { ...options, transitionTime: TIME }));
    await expect(out).toMatchFileSnapshot(outFile);
  });

  it('every output has an input', () => {
    const outputs = readdirSync(testdata).filter((f) => f.endsWith(OUT));
    const orphans = outputs.filter((f) => !cases.includes(f.slice(0, -OUT.length)));
    expect(orphans).toEqual([]);
  });

  it('is deterministic: the same input gives the same bytes, from a fresh or a warm translator', () => {
    const warm = createIngressTranslator();
    for (const name of cases) {
      const { objects, options } = load(name);
      const first = render(name, translateIngress(objects, { ...options, transitionTime: TIME }));
      const again = render(name, translateIngress(load(name).objects, { ...options, transitionTime: TIME }));
      warm.translate(objects, { ...options, transitionTime: TIME });
      const fromWarm = render(name, warm.translate(objects, { ...options, transitionTime: TIME }));
      expect(again).toBe(first);
      expect(fromWarm).toBe(first);
    }
  });
});
