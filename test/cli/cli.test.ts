import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { waitFor } from '../helpers/net.js';

/**
 * The CLI as a user runs it: `node bin/skein …` (what `npx skein` and `npm start` run), against the
 * built dist/ (`npm test` builds it first). The quickstart test runs exactly what `npm start` runs and the
 * curl commands README.md prints, with the real Envoy.
 */

const root = path.join(import.meta.dirname, '../..');
const bin = path.join(root, 'bin/skein');
const quickstart = path.join(root, 'examples/quickstart');
const run = promisify(execFile);

async function skein(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
      cwd: root,
      env: { ...process.env, SKEIN_LOG_FORMAT: 'json' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}

interface Condition {
  type: string;
  status: string;
  reason: string;
  observedGeneration?: number;
}
interface ListItem {
  kind: string;
  metadata: { name: string };
  status: {
    conditions?: Condition[];
    addresses?: { type: string; value: string }[];
    parents?: { conditions: Condition[] }[];
    listeners?: { name: string; attachedRoutes: number; conditions: Condition[] }[];
  };
}

function condition(conds: Condition[] | undefined, type: string): Condition | undefined {
  return conds?.find((c) => c.type === type);
}

describe('skein CLI', () => {
  it('exits with 2 and a clear message when the config directory does not exist', async () => {
    for (const cmd of [['up'], ['translate']]) {
      const r = await skein([...cmd, '--config-dir', '/nonexistent/skein-config']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('SKEIN_SOURCE_NO_DIR');
      expect(r.stderr).toContain('/nonexistent/skein-config');
    }
  });

  it('exits with 2 on an unknown command or flag', async () => {
    expect((await skein(['frobnicate'])).code).toBe(2);
    const r = await skein(['up', '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--no-such-flag');
  });

  it('prints the quickstart objects with their computed status', async () => {
    const r = await skein(['translate', '--config-dir', quickstart, '--show', 'status', '-o', 'json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { items: ListItem[] };
    const gw = list.items.find((i) => i.kind === 'Gateway');
    expect(condition(gw?.status.conditions, 'Accepted')?.status).toBe('True');
    expect(condition(gw?.status.conditions, 'Programmed')?.status).toBe('True');
    expect(gw?.status.addresses).toEqual([{ type: 'IPAddress', value: '127.0.0.1' }]);
    expect(gw?.status.listeners?.[0]?.attachedRoutes).toBe(1);
    const route = list.items.find((i) => i.kind === 'HTTPRoute');
    const parent = route?.status.parents?.[0];
    expect(condition(parent?.conditions, 'Accepted')).toMatchObject({
      status: 'True',
      observedGeneration: 1,
    });
    expect(condition(parent?.conditions, 'ResolvedRefs')).toMatchObject({
      status: 'True',
      reason: 'ResolvedRefs',
    });
    const gc = list.items.find((i) => i.kind === 'GatewayClass');
    expect(condition(gc?.status.conditions, 'Accepted')?.status).toBe('True');
    // The Deployment in backends.yaml is skipped, with one line naming it.
    expect(r.stderr.match(/SKEIN_SOURCE_UNKNOWN_KIND/g)).toHaveLength(1);
    expect(r.stderr).toContain('Deployment');
  });

  it('translates the quickstart YAML to IR and Envoy resources (golden files)', async () => {
    const ir = await skein(['translate', '--config-dir', quickstart, '--show', 'ir']);
    expect(ir.code).toBe(0);
    await expect(ir.stdout).toMatchFileSnapshot('testdata/quickstart.ir.yaml');
    const envoy = await skein(['translate', '--config-dir', quickstart, '--show', 'envoy']);
    expect(envoy.code).toBe(0);
    await expect(envoy.stdout).toMatchFileSnapshot('testdata/quickstart.envoy.yaml');
    const grpc = await skein([
      'translate',
      '--config-dir',
      quickstart,
      '--show',
      'envoy',
      '--flavor',
      'grpc',
    ]);
    expect(grpc.code).toBe(0);
    expect(parse(grpc.stdout)).toHaveProperty('clusters');
  });

  it('names the file, the object and the field for bad input, and reports missing backends as status', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-cli-bad-'));
    try {
      await writeFile(path.join(dir, 'broken.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: {name: x\n');
      await writeFile(
        path.join(dir, 'route.yaml'),
        `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - matches: [{ path: { type: Sideways, value: / } }]
      backendRefs: [{ name: nowhere, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: missing-backend, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules:
    - backendRefs: [{ name: nowhere, port: 80 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: skein
  listeners: [{ name: http, protocol: HTTP, port: 8080 }]
`,
      );
      const r = await skein(['translate', '--config-dir', dir, '--show', 'status', '-o', 'json']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/SKEIN_SOURCE_YAML_SYNTAX.*broken\.yaml/);
      expect(r.stderr).toMatch(
        /SKEIN_SOURCE_INVALID_FIELD.*route\.yaml.*HTTPRoute\/default\/web.*spec\.rules\[0\]\.matches\[0\]\.path\.type/,
      );
      const list = JSON.parse(r.stdout) as { items: ListItem[] };
      const missing = list.items.find((i) => i.metadata.name === 'missing-backend');
      expect(condition(missing?.status.parents?.[0]?.conditions, 'ResolvedRefs')).toMatchObject({
        status: 'False',
        reason: 'BackendNotFound',
      });
      // The valid Gateway is still programmed: bad objects only affect themselves.
      const gw = list.items.find((i) => i.kind === 'Gateway');
      expect(condition(gw?.status.conditions, 'Programmed')?.status).toBe('True');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('prints its version and the Envoy it would run', async () => {
    const r = await skein(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^skein \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/envoy 1\.\d+\.\d+/);
  });
});

describe('the quickstart, as README.md runs it', () => {
  let child: ChildProcess;
  let output = '';

  beforeAll(async () => {
    // Exactly `npm start` (see package.json), with a private xDS socket.
    const runDir = await mkdtemp(path.join(os.tmpdir(), 'skein-quickstart-'));
    child = spawn(
      process.execPath,
      [
        bin,
        'up',
        '--config-dir',
        'examples/quickstart',
        '--echo',
        'blue=127.0.0.1:9081',
        '--echo',
        'green=127.0.0.1:9082',
        '--xds-socket',
        path.join(runDir, 'xds.sock'),
      ],
      { cwd: root, env: { ...process.env, SKEIN_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    await waitFor(
      'the quickstart to serve',
      async () => ((await fetch('http://127.0.0.1:8080/blue')).status === 200 ? true : undefined),
      30_000,
      100,
    );
  });

  afterAll(async () => {
    if (child?.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('serves the split, the exact paths and skein status', async () => {
    const seen = { blue: 0, green: 0 };
    for (let i = 0; i < 100; i++) {
      const body = (await (await fetch('http://127.0.0.1:8080/')).json()) as { backend: 'blue' | 'green' };
      seen[body.backend]++;
    }
    // 80/20 over 100 requests: blue between 60 and 96 is > 4 standard deviations wide.
    expect(seen.blue).toBeGreaterThan(60);
    expect(seen.green).toBeGreaterThan(3);
    const green = (await (await fetch('http://127.0.0.1:8080/green')).json()) as { backend: string };
    expect(green.backend).toBe('green');

    const status = await skein(['status']);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/envoy:\s+LIVE/);
    expect(status.stdout).toMatch(/NACKs:\s+none/);
    expect(status.stdout).toMatch(/LDS\s+acked \S+/);
  });

  it('stops cleanly on SIGINT: Envoy drains and exits, and so does skein', async () => {
    const envoyPid = Number(
      /"pid":(\d+)/.exec(output.split('\n').find((l) => l.includes('Envoy started')) ?? '')?.[1],
    );
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    if (Number.isInteger(envoyPid) && envoyPid > 0) expect(() => process.kill(envoyPid, 0)).toThrow();
    await expect(fetch('http://127.0.0.1:8080/', { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
  });
});
