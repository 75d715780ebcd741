import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
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

async function skein(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string; killed: boolean }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
      cwd: root,
      env: { ...process.env, SKEIN_LOG_FORMAT: 'json', ...opts.env },
      timeout: opts.timeoutMs ?? 60_000,
    });
    return { code: 0, stdout, stderr, killed: false };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string; killed?: boolean };
    return {
      code: typeof err.code === 'number' ? err.code : -1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
      killed: err.killed === true,
    };
  }
}

/** A TCP listener on 127.0.0.1 holding a free port, to make a port busy. */
async function holdPort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Whether 127.0.0.1:port can be bound now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ port, host: '127.0.0.1', exclusive: true }, () => probe.close(() => resolve(true)));
  });
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

  describe('skein up flags and start-up failures (each failure one line with its code, a non-zero exit, no stack trace)', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'skein-cli-up-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** `skein up` on the quickstart with private ports and socket, plus `args`; must end within 8 s. */
    async function upFails(
      args: string[],
      env: NodeJS.ProcessEnv = {},
    ): Promise<{ code: number; line: string }> {
      const defaults = ['--status-port', '0', '--admin-port', '0'];
      const socket = args.some((a) => a.startsWith('--xds-'))
        ? []
        : ['--xds-socket', path.join(dir, 'x.sock')];
      const r = await skein(['up', '--config-dir', quickstart, ...defaults, ...socket, ...args], {
        env,
        timeoutMs: 8000,
      });
      expect(r.killed, `skein up ${args.join(' ')} did not exit within 8 s`).toBe(false);
      const lines = r.stderr.trim().split('\n');
      expect(lines, r.stderr).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at |Unhandled|node:internal/);
      return { code: r.code, line: lines[0] ?? '' };
    }

    it('a socket path under a file', async () => {
      const r = await upFails(['--no-envoy', '--xds-socket', '/dev/null/x.sock']);
      expect(r.code).toBe(1);
      expect(r.line).toBe(
        'skein up: SKEIN_XDS_LISTEN_FAILED: Cannot listen on unix:///dev/null/x.sock: /dev/null is not a directory',
      );
    });

    it('a socket path where no directory can be made (under /proc: fails at once, no hang)', async () => {
      const r = await upFails(['--no-envoy', '--xds-socket', '/proc/nope/x.sock']);
      expect(r.code).toBe(1);
      expect(r.line).toBe(
        'skein up: SKEIN_XDS_LISTEN_FAILED: Cannot listen on unix:///proc/nope/x.sock: cannot create /proc/nope: ENOENT',
      );
    });

    it('a host name for --xds-address (Envoy needs an IP literal)', async () => {
      const r = await upFails(['--xds-address', 'localhost:18000']);
      expect(r.code).toBe(2);
      expect(r.line).toMatch(
        /^skein up: SKEIN_CLI_INVALID_FLAG: Cannot use --xds-address "localhost:18000": "localhost" is not an IP address/,
      );
      expect((await upFails(['--xds-address', '127.0.0.1'])).line).toContain('is not IP:PORT');
    });

    it('no Envoy anywhere', async () => {
      const r = await upFails([], {
        ENVOY_BIN: '',
        PATH: path.join(dir, 'empty-path'),
        XDG_CACHE_HOME: path.join(dir, 'empty-cache'),
      });
      expect(r.code).toBe(1);
      expect(r.line).toMatch(/^skein up: SKEIN_ENVOY_NOT_FOUND: Cannot find Envoy: .*Run `npm run setup`/);
    });

    it('an ENVOY_BIN that does not run', async () => {
      const r = await upFails([], { ENVOY_BIN: path.join(dir, 'no-such-envoy') });
      expect(r.code).toBe(1);
      expect(r.line).toMatch(/^skein up: SKEIN_ENVOY_BIN_UNUSABLE: Cannot run Envoy as ENVOY_BIN=/);
    });

    it("Envoy's admin port or the status port in use", async () => {
      const held = await holdPort();
      try {
        const admin = await upFails(['--admin-port', String(held.port)]);
        expect(admin.code).toBe(1);
        expect(admin.line).toBe(
          `skein up: SKEIN_ADMIN_PORT_IN_USE: Cannot give Envoy's admin interface 127.0.0.1:${held.port}: another process listens on it; stop what holds it or choose another --admin-port`,
        );
        const status = await upFails(['--no-envoy', '--status-port', String(held.port)]);
        expect(status.code).toBe(1);
        expect(status.line).toMatch(
          new RegExp(
            `^skein up: SKEIN_STATUS_LISTEN_FAILED: Cannot start Skein's status server on 127.0.0.1:${held.port}`,
          ),
        );
        const echo = await upFails(['--no-envoy', '--echo', `blue=127.0.0.1:${held.port}`]);
        expect(echo.code).toBe(1);
        expect(echo.line).toMatch(/^skein up: SKEIN_ECHO_LISTEN_FAILED: Cannot start echo backend blue/);
      } finally {
        await held.close();
      }
    });

    it('bad flag values, each naming the flag', async () => {
      for (const [args, message] of [
        [['--admin-port', '70000'], 'Cannot use --admin-port "70000": it must be a port number in 0..65535'],
        [['--envoy-log-level', 'loud'], 'Cannot use --envoy-log-level "loud"'],
        [['--ingress-address', 'example.com'], 'Cannot use --ingress-address "example.com"'],
        [['--ingress-mode', 'both'], 'Cannot use --ingress-mode "both": it takes shared or dedicated'],
        [['--ingress-https-port', '80'], 'Cannot use --ingress-https-port 80: it is also the HTTP port'],
        [['--ingress-status-address', 'bad_name'], 'Cannot use --ingress-status-address "bad_name"'],
      ] as const) {
        const r = await upFails([...args]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.line).toContain(`skein up: SKEIN_CLI_INVALID_FLAG: ${message}`);
      }
    });

    it('hands the Ingress flags to the translator', async () => {
      // The Ingress's default HTTP port (the flag) is Skein's status port, which is reserved: the
      // Ingress is not served, and `skein status` says why. Without the flag it would ask for port 80.
      const config = await mkdtemp(path.join(os.tmpdir(), 'skein-cli-ingress-'));
      const held = await holdPort();
      const statusPort = held.port;
      await held.close();
      let child: ChildProcess | undefined;
      try {
        await writeFile(
          path.join(config, 'ingress.yaml'),
          `apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: skein }
spec: { controller: skein.io/ingress-controller }
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: web, namespace: default }
spec:
  ingressClassName: skein
  defaultBackend: { service: { name: web, port: { number: 80 } } }
`,
        );
        child = spawn(
          process.execPath,
          [
            bin,
            'up',
            '--config-dir',
            config,
            '--no-envoy',
            '--xds-socket',
            path.join(dir, 'ingress.sock'),
            '--status-port',
            String(statusPort),
            '--ingress-address',
            '127.0.0.1',
            '--ingress-http-port',
            String(statusPort),
          ],
          { cwd: root, env: { ...process.env, SKEIN_LOG_FORMAT: 'json' }, stdio: 'ignore' },
        );
        const line = await waitFor(
          'skein status to show the Ingress problem',
          async () => {
            const r = await skein(['status', '--port', String(statusPort)], { timeoutMs: 5000 });
            return r.stdout.split('\n').find((l) => l.includes('SKEIN_INGRESS_CONFLICT'));
          },
          15_000,
          100,
        );
        expect(line).toContain('Ingress/default/web');
        expect(line).toContain(
          `HTTP on 127.0.0.1:${statusPort} is not served: 127.0.0.1:${statusPort} is taken by Skein's status server`,
        );
      } finally {
        if (child !== undefined && child.exitCode === null) {
          const exited = new Promise((r) => child?.once('exit', r));
          child.kill('SIGTERM');
          await exited;
        }
        await rm(config, { recursive: true, force: true });
      }
    });

    it('documents the Ingress flags in --help', async () => {
      const r = await skein(['up', '--help']);
      expect(r.code).toBe(0);
      for (const flag of [
        '--ingress-controller',
        '--ingress-address',
        '--ingress-http-port',
        '--ingress-https-port',
        '--ingress-mode',
        '--ingress-status-address',
      ]) {
        expect(r.stdout).toContain(flag);
        expect((await skein(['translate', '--help'])).stdout).toContain(flag);
      }
    });
  });

  it('prints its version and the Envoy it would run', async () => {
    const r = await skein(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^skein \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/envoy 1\.\d+\.\d+/);
  });
});

/** What `npm start` and the README use: the Gateway, Envoy's admin, Skein's status, the two echo backends. */
const QUICKSTART_PORTS = [8080, 9901, 9902, 9081, 9082] as const;

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
}

describe('the quickstart, as README.md runs it', () => {
  let child: ChildProcess;
  let output = '';

  beforeAll(async () => {
    // The README's ports, as `npm start` uses them. A user's own `npm start` (or anything else on
    // them) makes this test fail here, saying so, rather than flake against someone else's server.
    const busy: number[] = [];
    for (const port of QUICKSTART_PORTS) if (!(await portFree(port))) busy.push(port);
    if (busy.length > 0) {
      throw new Error(
        `the quickstart test needs 127.0.0.1 ports ${QUICKSTART_PORTS.join(', ')}, and ${busy.join(', ')} ${busy.length === 1 ? 'is' : 'are'} in use: is \`npm start\` running? Stop it and run the test again`,
      );
    }
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
    // Envoy's pid from `skein status`, which reads it from the supervisor.
    const status = await skein(['status', '-o', 'json']);
    expect(status.code).toBe(0);
    const envoy = (JSON.parse(status.stdout) as { envoy: { supervised: boolean; pid?: number } }).envoy;
    expect(envoy.supervised).toBe(true);
    const envoyPid = envoy.pid ?? -1;
    expect(envoyPid).toBeGreaterThan(1);
    expect(output).toContain(`Envoy started (pid ${envoyPid})`);
    expect(alive(envoyPid)).toBe(true);

    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    // skein exits only after Envoy has: no Envoy left behind.
    expect(alive(envoyPid)).toBe(false);
    const refused = await fetch('http://127.0.0.1:8080/', { signal: AbortSignal.timeout(1000) }).then(
      () => undefined,
      (e: unknown) => (e as { cause?: { code?: string } }).cause?.code,
    );
    expect(refused).toBe('ECONNREFUSED');
  });
});
