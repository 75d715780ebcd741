import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  createGatewayTranslator,
  type GatewayResult,
  type GatewayTranslateOptions,
  translateGateway,
} from '../../src/gateway/translate.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import type { ObjectSet } from '../../src/sources/objects.js';

/**
 * Golden files: testdata/<case>.in.yaml (Kubernetes objects) → testdata/<case>.out.yaml (statuses,
 * diagnostics and IR). Cases are named after the Gateway API conformance tests they mirror, where one
 * exists. A case may have testdata/<case>.options.yaml: translator options besides the transition time
 * (`reservedSockets`, `controllerName`, `crdBundleVersions`).
 *
 * `npx vitest run -u test/gateway` rewrites the outputs; review the diff by eye before committing. A
 * case without an output fails unless run with -u (vitest would otherwise write it silently outside CI,
 * and an unreviewed golden would pass from then on).
 */
const testdata = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const IN = '.in.yaml';
const OUT = '.out.yaml';
const OPTIONS = '.options.yaml';
const TIME = '2024-01-01T00:00:00Z';

const files = readdirSync(testdata);
const cases = files
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

/** The options of a case: its .options.yaml (if any) and the fixed transition time. */
function options(name: string): GatewayTranslateOptions {
  const file = path.join(testdata, `${name}${OPTIONS}`);
  if (!existsSync(file)) return { transitionTime: TIME };
  const given = parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const known = new Set(['reservedSockets', 'controllerName', 'crdBundleVersions']);
  const unknown = Object.keys(given).filter((k) => !known.has(k));
  if (unknown.length > 0) throw new Error(`${name}${OPTIONS}: unknown option(s) ${unknown.join(', ')}`);
  return { ...(given as Partial<GatewayTranslateOptions>), transitionTime: TIME };
}

function render(name: string, result: GatewayResult): string {
  const body = stringify(
    { statuses: result.statuses, diagnostics: result.diagnostics, ir: result.ir },
    { aliasDuplicateObjects: false, lineWidth: 0 },
  );
  return `# Generated from ${name}${IN} by test/gateway/golden.test.ts; \`npx vitest run -u test/gateway\` rewrites it.\n${body}`;
}

/** Whether this run rewrites snapshots (`-u`). vitest keeps the mode in a field it does not export. */
function updating(): boolean {
  return (
    (expect.getState().snapshotState as unknown as { _updateSnapshot?: unknown })._updateSnapshot === 'all'
  );
}

/**
 * The status reasons issue 3 asks a golden case for (besides Accepted, Programmed, ResolvedRefs and
 * the like), and Skein's own HostnameConflict for routes: each must appear in some output.
 */
const REASONS = [
  // Routes
  'NotAllowedByListeners',
  'NoMatchingListenerHostname',
  'NoMatchingParent',
  'BackendNotFound',
  'InvalidKind',
  'RefNotPermitted',
  'UnsupportedValue',
  'UnsupportedProtocol',
  'HostnameConflict',
  // Listeners
  'ProtocolConflict',
  'InvalidCertificateRef',
  'InvalidRouteKinds',
  'PortUnavailable',
  // Gateways and classes
  'InvalidParameters',
  'UnsupportedAddress',
  'AddressNotUsable',
  'ListenersNotValid',
];

describe('Gateway API translation golden files', () => {
  it.each(cases)('%s', async (name) => {
    const { objects, problems } = load(name);
    // Inputs are objects the API server would accept; anything else belongs in the source tests.
    expect(problems).toEqual([]);
    const out = render(name, translateGateway(objects, options(name)));
    const file = path.join(testdata, `${name}${OUT}`);
    if (!existsSync(file) && !updating()) {
      expect.fail(`${name}${IN} has no ${name}${OUT}: run \`npx vitest run -u test/gateway\` and review it`);
    }
    await expect(out).toMatchFileSnapshot(file);
  });

  it('knows whether it runs with -u (the vitest field it reads still exists)', () => {
    const mode = (expect.getState().snapshotState as unknown as { _updateSnapshot?: unknown })
      ._updateSnapshot;
    expect(['all', 'new', 'none']).toContain(mode);
  });

  it('every output and every options file has an input', () => {
    const orphans = files
      .filter((f) => f.endsWith(OUT) || f.endsWith(OPTIONS))
      .filter((f) => !cases.includes(f.slice(0, -(f.endsWith(OUT) ? OUT : OPTIONS).length)));
    expect(orphans).toEqual([]);
  });

  it('has a case for every status reason the issue lists', () => {
    const outputs = cases
      .filter((c) => existsSync(path.join(testdata, `${c}${OUT}`)))
      .map((c) => readFileSync(path.join(testdata, `${c}${OUT}`), 'utf8'))
      .join('\n');
    const missing = REASONS.filter((r) => !new RegExp(`^\\s+reason: ${r}$`, 'm').test(outputs));
    expect(missing).toEqual([]);
  });

  it('is deterministic: the same input gives the same bytes, from a fresh or a warm translator', () => {
    const warm = createGatewayTranslator();
    for (const name of cases) {
      const { objects } = load(name);
      const first = render(name, translateGateway(objects, options(name)));
      const again = render(name, translateGateway(load(name).objects, options(name)));
      warm.translate(objects, options(name));
      const fromWarm = render(name, warm.translate(objects, options(name)));
      expect(again).toBe(first);
      expect(fromWarm).toBe(first);
    }
  });
});
