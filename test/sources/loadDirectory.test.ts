import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import { FileCache } from '../../src/sources/file/FileCache.js';
import { loadDirectory } from '../../src/sources/file/loadDirectory.js';
import type { Diagnostic } from '../../src/sources/objects.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'skein-load-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A pino logger writing JSON lines into memory. */
function memoryLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = pino({ level: 'debug', base: null }, stream);
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

async function put(file: string, content: string): Promise<void> {
  await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
  await writeFile(path.join(dir, file), content);
}

const service = (name: string, namespace?: string): string => `
apiVersion: v1
kind: Service
metadata:
  name: ${name}${namespace === undefined ? '' : `\n  namespace: ${namespace}`}
spec:
  ports: [{ port: 80 }]
`;

describe('loadDirectory', () => {
  it('reads multi-document files recursively, fills in defaults and records origins', async () => {
    await put('a.yaml', `${service('zeta')}---\n${service('alpha', 'beta')}---\n# an empty document\n`);
    await put(
      'sub/class.yml',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: skein\n  namespace: ignored\nspec:\n  controllerName: skein.io/gateway-controller\n',
    );
    await put('.hidden.yaml', service('hidden'));
    await put('.git/objects.yaml', service('git'));
    await put('notes.txt', service('text'));

    const result = await loadDirectory(dir, { logger: silentLogger });
    expect(result.diagnostics).toEqual([]);
    expect(result.parsedFiles).toEqual(['a.yaml', 'sub/class.yml']);
    // Sorted by namespace, then name; a missing namespace is "default".
    expect(result.objects.services.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`)).toEqual([
      'beta/alpha',
      'default/zeta',
    ]);
    // Cluster-scoped kinds have no namespace at all.
    expect(result.objects.gatewayClasses[0]?.metadata?.namespace).toBeUndefined();
    expect(Object.fromEntries(result.objects.origins)).toEqual({
      'Service/default/zeta': 'a.yaml#0',
      'Service/beta/alpha': 'a.yaml#1',
      'GatewayClass//skein': 'sub/class.yml#0',
    });
    // Objects are frozen: translators memoise on identity, so nobody may change one in place.
    expect(Object.isFrozen(result.objects.services[0])).toBe(true);
    expect(Object.isFrozen(result.objects.services[0]?.spec?.ports)).toBe(true);
  });

  it('skips kinds it does not read with one log line each', async () => {
    await put(
      'app.yaml',
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web, namespace: shop }\nspec: {}\n---\napiVersion: v1\nkind: PodTemplate\nmetadata: { name: settings }\ntemplate: {}\n---\n${service('web')}`,
    );
    const log = memoryLogger();
    const result = await loadDirectory(dir, { logger: log.logger });
    expect(result.objects.services).toHaveLength(1);
    const skipped = log.lines().filter((l) => l['code'] === 'SKEIN_SOURCE_UNKNOWN_KIND');
    expect(skipped).toHaveLength(2);
    expect(skipped[0]).toMatchObject({ kind: 'Deployment', name: 'shop/web', file: 'app.yaml#0' });
    expect(skipped[1]).toMatchObject({ kind: 'PodTemplate', name: 'settings', file: 'app.yaml#1' });
    expect(log.lines()).toHaveLength(2);
  });

  it('drops objects the API server would reject, naming file, document, line, object and field', async () => {
    await put(
      'bad.yaml',
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  rules:
    - matches:
        - path:
            type: Foo
            value: /x
      backendRefs:
        - name: web
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: g
  namespace: edge
spec:
  gatewayClassName: skein
  listeners:
    - name: http
      port: 70000
    - name: http
      port: 80
      protocol: HTTP
---
${service('fine')}---
- just
- a list
---
apiVersion: v1
metadata: { name: nokind }
`,
    );
    const result = await loadDirectory(dir, { logger: silentLogger });
    expect(result.objects.httpRoutes).toEqual([]);
    expect(result.objects.gateways).toEqual([]);
    expect(result.objects.services.map((s) => s.metadata?.name)).toEqual(['fine']);
    const d = (field: string): Diagnostic | undefined => result.diagnostics.find((x) => x.field === field);

    expect(d('spec.rules[0].matches[0].path.type')).toMatchObject({
      code: 'SKEIN_SOURCE_INVALID_FIELD',
      severity: 'error',
      origin: 'bad.yaml#0',
      object: 'HTTPRoute/default/r',
    });
    expect(d('spec.rules[0].matches[0].path.type')?.message).toMatch(
      /Exact, PathPrefix, RegularExpression \(line 9\)/,
    );
    // CEL: a Service reference needs a port.
    expect(d('spec.rules[0].backendRefs[0].port')).toMatchObject({
      code: 'SKEIN_SOURCE_MISSING_FIELD',
      object: 'HTTPRoute/default/r',
    });
    expect(d('spec.listeners[0].protocol')).toMatchObject({
      code: 'SKEIN_SOURCE_MISSING_FIELD',
      origin: 'bad.yaml#1',
      object: 'Gateway/edge/g',
      message: 'is required (line 22)',
    });
    expect(d('spec.listeners[0].port')).toMatchObject({
      code: 'SKEIN_SOURCE_INVALID_FIELD',
      message: 'must be a port in 1..65535 (line 23)',
    });
    expect(result.diagnostics.find((x) => x.code === 'SKEIN_SOURCE_NOT_AN_OBJECT')).toMatchObject({
      origin: 'bad.yaml#3',
    });
    expect(d('kind')).toMatchObject({ code: 'SKEIN_SOURCE_MISSING_FIELD', origin: 'bad.yaml#4' });
  });

  it('checks the CRD CEL rules too', async () => {
    await put(
      'gw.yaml',
      `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: g }
spec:
  gatewayClassName: skein
  addresses: [{ type: IPAddress, value: not-an-ip }]
  listeners:
    - { name: a, port: 80, protocol: HTTP }
    - { name: a, port: 81, protocol: HTTP, tls: { mode: Terminate } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  rules:
    - matches: [{ path: { type: PathPrefix, value: "/a//b" } }]
`,
    );
    const result = await loadDirectory(dir, { logger: silentLogger });
    const fields = result.diagnostics.map((d) => `${d.code} ${d.field}`);
    expect(fields).toEqual(
      expect.arrayContaining([
        'SKEIN_SOURCE_INVALID_FIELD spec.listeners[1].tls',
        'SKEIN_SOURCE_INVALID_FIELD spec.listeners[1].name',
        'SKEIN_SOURCE_INVALID_FIELD spec.addresses[0].value',
        'SKEIN_SOURCE_INVALID_FIELD spec.rules[0].matches[0].path.value',
      ]),
    );
  });

  it('warns about fields the schema does not know, and keeps the object', async () => {
    await put(
      'typo.yaml',
      `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: web }
spec:
  hostname: www.example.com
  rules: []
`,
    );
    const result = await loadDirectory(dir, { logger: silentLogger });
    expect(result.objects.httpRoutes).toHaveLength(1);
    expect(result.diagnostics).toEqual([
      {
        code: 'SKEIN_SOURCE_UNKNOWN_FIELD',
        severity: 'warning',
        origin: 'typo.yaml#0',
        object: 'HTTPRoute/web/r',
        field: 'spec.hostname',
        message: 'is not a field of HTTPRoute; it is ignored (line 5)',
      },
    ]);
  });

  it('reports an object declared twice and keeps the first', async () => {
    await put('a.yaml', service('web'));
    await put('b.yaml', service('web').replace('port: 80', 'port: 81'));
    const result = await loadDirectory(dir, { logger: silentLogger });
    expect(result.objects.services).toHaveLength(1);
    expect(result.objects.services[0]?.spec?.ports?.[0]?.port).toBe(80);
    expect(result.diagnostics).toEqual([
      expect.objectContaining({
        code: 'SKEIN_SOURCE_DUPLICATE_OBJECT',
        origin: 'b.yaml#0',
        object: 'Service/default/web',
      }),
    ]);
  });

  it('reports a YAML syntax error with file, document and line', async () => {
    await put('broken.yaml', `${service('ok')}---\nkind: Service\nmetadata: { name: [unclosed\n`);
    const result = await loadDirectory(dir, { logger: silentLogger });
    expect(result.objects.services).toEqual([]);
    expect(result.diagnostics[0]).toMatchObject({
      code: 'SKEIN_SOURCE_YAML_SYNTAX',
      severity: 'error',
      origin: 'broken.yaml#1',
    });
    expect(result.diagnostics[0]?.message).toMatch(/line \d+, column \d+/);
  });

  it('fails with SKEIN_SOURCE_NO_DIR for a missing directory or a file', async () => {
    await expect(loadDirectory(path.join(dir, 'nope'), { logger: silentLogger })).rejects.toMatchObject({
      code: 'SKEIN_SOURCE_NO_DIR',
    });
    await put('file.yaml', service('x'));
    await expect(loadDirectory(path.join(dir, 'file.yaml'), { logger: silentLogger })).rejects.toMatchObject({
      code: 'SKEIN_SOURCE_NO_DIR',
    });
  });
});

describe('FileCache (last good config)', () => {
  it('keeps a file’s last good objects, by identity, while it has a syntax error', () => {
    const cache = new FileCache();
    cache.update('svc.yaml', `${service('a')}---\n${service('b')}`);
    const good = cache.snapshot().objects.services;
    expect(good).toHaveLength(2);

    const broken = cache.update('svc.yaml', `${service('a')}---\nmetadata: {\n`);
    expect(broken.changed).toBe(true);
    const snap = cache.snapshot();
    expect(snap.objects.services[0]).toBe(good[0]);
    expect(snap.objects.services[1]).toBe(good[1]);
    expect(snap.diagnostics.map((d) => d.code)).toEqual([
      'SKEIN_SOURCE_YAML_SYNTAX',
      'SKEIN_SOURCE_YAML_SYNTAX',
    ]);
    expect(snap.diagnostics[0]?.origin).toBe('svc.yaml#1');
    expect(snap.diagnostics[1]?.message).toBe(
      'keeping the 2 object(s) of the last version of svc.yaml that parsed',
    );

    // Fixed again: the unchanged document keeps its object; the changed one is new.
    cache.update('svc.yaml', `${service('a')}---\n${service('b').replace('80', '81')}`);
    const fixed = cache.snapshot();
    expect(fixed.diagnostics).toEqual([]);
    expect(fixed.objects.services[0]).toBe(good[0]);
    expect(fixed.objects.services[1]).not.toBe(good[1]);
  });

  it('does not parse a file again when its content is unchanged', () => {
    const cache = new FileCache();
    expect(cache.update('a.yaml', service('a')).parsed).toBeDefined();
    expect(cache.update('a.yaml', service('a'))).toEqual({ changed: false, parsed: undefined });
  });
});
