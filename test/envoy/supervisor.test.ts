import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { getReady, getServerInfo } from '../../src/envoy/admin.js';
import { ENVOY_VERSION } from '../../src/envoy/findEnvoy.js';
import { EnvoySupervisor, EnvoySupervisorError } from '../../src/envoy/supervisor.js';
import { http1Backend } from '../helpers/backend.js';
import {
  addStaticProxy,
  baseIdsFromLogs,
  captureLogger,
  createTestEnvoy,
  ensureEnvoy,
  processExists,
  startTestEnvoy,
  type TestEnvoy,
  tempDir,
  testListenerAddress,
} from '../helpers/envoy.js';
import { randomLoopback, waitFor } from '../helpers/net.js';

/** Everything a test started, stopped in afterEach even when the test failed half-way. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function track(p: Promise<TestEnvoy>): Promise<TestEnvoy> {
  const e = await p;
  cleanups.push(() => e.close());
  return e;
}

/** Resolves with the arguments of the next `event`, or rejects after timeoutMs. */
function next<A extends unknown[]>(
  s: EnvoySupervisor,
  event: 'started' | 'exit' | 'restarting' | 'ready',
  timeoutMs = 10_000,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no '${event}' event within ${timeoutMs} ms`)),
      timeoutMs,
    );
    s.once(event, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args as A);
    });
  });
}

/** True if pid is a live process (a zombie is not). */
function isRunning(pid: number): boolean {
  if (!processExists(pid)) return false;
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may hold spaces, so split after the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return process.platform !== 'linux';
  }
}

const shm = (baseId: string): string => `/dev/shm/envoy_shared_memory_${baseId}0`;

describe('EnvoySupervisor', () => {
  it('starts Envoy against an xDS socket nobody serves, with admin on 127.0.0.1 and logs forwarded', async () => {
    const e = await track(createTestEnvoy({ initialFetchTimeoutMs: 300 }));
    const s = e.supervisor;
    const started = next<[number]>(s, 'started');
    const ready = next<[]>(s, 'ready');
    await s.start();
    const [pid] = await started;

    expect(s.pid).toBe(pid);
    expect(processExists(pid)).toBe(true);
    expect(s.version).toBe(ENVOY_VERSION);
    expect(s.restarts).toBe(0);
    expect(s.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const info = await getServerInfo(s.adminUrl ?? '');
    expect(info.version).toContain(`/${ENVOY_VERSION}/`);
    expect(info.command_line_options).toMatchObject({ use_dynamic_base_id: true });

    // The xDS server is absent: LIVE only after the initial fetch timed out, then 'ready'.
    await s.waitReady(10_000);
    await ready;
    expect(await getReady(s.adminUrl ?? '')).toBe('LIVE');

    // The version is logged at start, and Envoy's own lines arrive with the component binding, parsed,
    // each message behind the visible "[envoy] " prefix (a terminal shows the message, not the field).
    expect(e.records).toContainEqual(
      expect.objectContaining({ component: 'envoy-supervisor', msg: `starting Envoy ${ENVOY_VERSION}` }),
    );
    const epoch = e.records.find(
      (r) => r['component'] === 'envoy' && /^\[envoy\] initializing epoch 0/.test(r.msg ?? ''),
    );
    expect(epoch).toMatchObject({ component: 'envoy', pid, scope: 'main', level: 30 });
    // Envoy warns that nobody answered the initial fetch: forwarded at pino's warn level (40).
    expect(e.records).toContainEqual(
      expect.objectContaining({
        component: 'envoy',
        level: 40,
        msg: expect.stringMatching(/^\[envoy\] .*initial fetch timed out/),
      }),
    );
    const forwarded = e.records.filter((r) => r['component'] === 'envoy');
    expect(forwarded.length).toBeGreaterThan(2);
    for (const r of forwarded) expect(r.msg).toMatch(/^\[envoy\] /);
    // Skein's own lines carry no such prefix.
    for (const r of e.records.filter((x) => x['component'] !== 'envoy'))
      expect(r.msg).not.toMatch(/^\[envoy\]/);
  });

  it('restarts Envoy after SIGKILL with a new pid, and admin answers again', async () => {
    const e = await track(startTestEnvoy());
    const s = e.supervisor;
    const firstPid = s.pid ?? -1;
    const firstAdmin = s.adminUrl;
    const exit = next<[number | null, string | null]>(s, 'exit');
    const restarting = next<[number]>(s, 'restarting');
    const started = next<[number]>(s, 'started');

    process.kill(firstPid, 'SIGKILL');
    expect(await exit).toEqual([null, 'SIGKILL']);
    expect(await restarting).toEqual([250]);
    const [newPid] = await started;

    expect(newPid).not.toBe(firstPid);
    expect(s.restarts).toBe(1);
    expect(() => process.kill(firstPid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    const admin = await waitFor('admin after restart', () => s.adminUrl, 10_000);
    expect(admin).not.toBe(firstAdmin); // port 0: a new port each run
    expect((await getServerInfo(admin)).command_line_options).toMatchObject({ concurrency: 1 });
    expect(s.pid).toBe(newPid);
    await s.waitReady(10_000);
    expect(e.records).toContainEqual(
      expect.objectContaining({
        level: 40,
        msg: 'Envoy exited unexpectedly (signal SIGKILL); restarting in 250 ms',
      }),
    );
  });

  it('backs off exponentially up to the cap, and starts over after a healthy run', async () => {
    const e = await track(
      startTestEnvoy({ supervisor: { backoff: { initialMs: 50, maxMs: 150, resetAfterMs: 2500 } } }),
    );
    const s = e.supervisor;
    const delays: number[] = [];
    s.on('restarting', (d) => delays.push(d));
    const killAndRestart = async (): Promise<void> => {
      const pid = s.pid ?? -1;
      const started = next(s, 'started');
      process.kill(pid, 'SIGKILL');
      await started;
      await waitFor('admin after restart', () => s.adminUrl, 10_000);
    };
    await killAndRestart();
    await killAndRestart();
    await killAndRestart();
    expect(delays).toEqual([50, 100, 150]);
    // Up for longer than resetAfterMs: the next failure counts as the first again.
    await new Promise((r) => setTimeout(r, 2600));
    await killAndRestart();
    expect(delays).toEqual([50, 100, 150, 50]);
    expect(s.restarts).toBe(4);
  });

  it('stop() during a restart backoff cancels the restart', async () => {
    const e = await track(startTestEnvoy({ supervisor: { backoff: { initialMs: 700 } } }));
    const s = e.supervisor;
    let starts = 0;
    s.on('started', () => starts++);
    const restarting = next<[number]>(s, 'restarting');
    process.kill(s.pid ?? -1, 'SIGKILL');
    expect(await restarting).toEqual([700]);
    const t0 = Date.now();
    await s.stop();
    expect(Date.now() - t0).toBeLessThan(500);
    await new Promise((r) => setTimeout(r, 1000));
    expect(starts).toBe(0);
    expect(s.pid).toBeUndefined();
    expect(s.restarts).toBe(0);
  });

  it('stop() drains open connections up to the drain timeout, then SIGTERMs; nothing is left behind', async () => {
    const host = randomLoopback();
    const backend = await http1Backend.start({ host, port: 0, name: 'b' });
    cleanups.push(() => backend.close());
    const e = await track(
      startTestEnvoy({
        edit: (b) => addStaticProxy(b, host, [{ prefix: '/', cluster: 'b', host, port: backend.port }]),
        supervisor: { drainTimeoutMs: 1500 },
      }),
    );
    const s = e.supervisor;
    await s.waitReady(10_000);
    const pid = s.pid ?? -1;
    const listener = await testListenerAddress(s.adminUrl ?? '');

    // One request over a keep-alive connection, which then stays open and idle.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => agent.destroy());
    const status = await new Promise<number | undefined>((resolve, reject) => {
      http
        .get({ host: listener.host, port: listener.port, path: '/x', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        })
        .on('error', reject);
    });
    expect(status).toBe(200);

    const baseId = baseIdsFromLogs(e.records).get(pid);
    expect(baseId).toMatch(/^\d+$/);
    if (process.platform === 'linux') expect(existsSync(shm(baseId ?? ''))).toBe(true);
    const runDirs = (await readdir(e.dir)).filter((n) => n.startsWith('envoy-'));
    expect(runDirs).toHaveLength(1);

    const exit = next<[number | null, string | null]>(s, 'exit');
    const t0 = Date.now();
    await s.stop();
    const took = Date.now() - t0;

    // It waited for the open connection (the whole drain timeout), then Envoy exited cleanly on SIGTERM.
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(1500 + 2500);
    expect(await exit).toEqual([0, null]);
    expect(e.records).toContainEqual(expect.objectContaining({ msg: 'draining Envoy listeners' }));
    expect(e.records).toContainEqual(
      expect.objectContaining({ component: 'envoy', msg: '[envoy] caught ENVOY_SIGTERM' }),
    );
    expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    expect(s.pid).toBeUndefined();
    expect(s.adminUrl).toBeUndefined();
    // Its private run directory and hot-restart shared memory are gone.
    expect(existsSync(path.join(e.dir, runDirs[0] ?? ''))).toBe(false);
    if (process.platform === 'linux') expect(existsSync(shm(baseId ?? ''))).toBe(false);
    // The access log line came through stdout, structured.
    expect(e.records).toContainEqual(
      expect.objectContaining({
        component: 'envoy',
        stream: 'stdout',
        msg: '[envoy] access',
        access: { path: '/x', code: 200, upstream: 'b' },
      }),
    );
  });

  it('stop() is quick with no open connections, and idempotent', async () => {
    const e = await track(startTestEnvoy({ supervisor: { drainTimeoutMs: 5000 } }));
    const s = e.supervisor;
    const pid = s.pid ?? -1;
    const t0 = Date.now();
    await Promise.all([s.stop(), s.stop()]);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(processExists(pid)).toBe(false);
    await s.stop();
  });

  it('SIGKILLs an Envoy that does not exit within the grace period after SIGTERM', async () => {
    const e = await track(startTestEnvoy({ supervisor: { drainTimeoutMs: 200, killGraceMs: 300 } }));
    const s = e.supervisor;
    const pid = s.pid ?? -1;
    // A stopped process neither answers admin nor acts on SIGTERM, but SIGKILL still ends it.
    process.kill(pid, 'SIGSTOP');
    const exit = next<[number | null, string | null]>(s, 'exit');
    await s.stop();
    expect(await exit).toEqual([null, 'SIGKILL']);
    expect(processExists(pid)).toBe(false);
    expect(e.records).toContainEqual(
      expect.objectContaining({ level: 40, msg: 'Envoy did not exit 300 ms after SIGTERM; sending SIGKILL' }),
    );
  });

  it('waitReady() times out with SKEIN_ENVOY_NOT_READY while Envoy waits for its first config', async () => {
    const e = await track(startTestEnvoy({ initialFetchTimeoutMs: 60_000 }));
    const err = await e.supervisor.waitReady(1000).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(EnvoySupervisorError);
    expect(err).toMatchObject({
      code: 'SKEIN_ENVOY_NOT_READY',
      message: expect.stringContaining('(last: state PRE_INITIALIZING)'),
    });
  });

  it('stop() during start() wins: start() rejects and nothing is left running', async () => {
    const e = await track(createTestEnvoy());
    const s = e.supervisor;
    const pids: number[] = [];
    s.on('started', (pid) => pids.push(pid));

    // Before Envoy is spawned.
    const early = s.start().catch((err: unknown) => err);
    await s.stop();
    expect(await early).toMatchObject({
      code: 'SKEIN_ENVOY_START_FAILED',
      message: expect.stringContaining('stop()'),
    });

    // After it is spawned, before admin is up.
    const late = s.start().catch((err: unknown) => err);
    const [pid] = await next<[number]>(s, 'started');
    await s.stop();
    expect(await late).toMatchObject({ code: 'SKEIN_ENVOY_START_FAILED' });
    expect(pids).toEqual([pid]);
    expect(processExists(pid)).toBe(false);
    expect((await readdir(e.dir)).filter((n) => n.startsWith('envoy-'))).toEqual([]);

    // And it can start again afterwards.
    await s.start();
    expect(s.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('refuses a second start() and waitReady() after stop()', async () => {
    const e = await track(startTestEnvoy());
    await expect(e.supervisor.start()).rejects.toMatchObject({ code: 'SKEIN_ENVOY_ALREADY_STARTED' });
    await e.supervisor.stop();
    await expect(e.supervisor.waitReady(100)).rejects.toMatchObject({ code: 'SKEIN_ENVOY_NOT_RUNNING' });
  });

  it("fails start() with Envoy's own complaint for a bad bootstrap, and leaves nothing running", async () => {
    const e = await track(
      createTestEnvoy({
        edit: (b) => {
          (b['dynamic_resources'] as Record<string, Record<string, unknown>>)['ads_config'] = {
            api_type: 'NOT_A_TYPE',
          };
        },
      }),
    );
    const s = e.supervisor;
    const pids: number[] = [];
    s.on('started', (pid) => pids.push(pid));
    const err = await s.start().catch((x: unknown) => x);
    expect(err).toMatchObject({ code: 'SKEIN_ENVOY_START_FAILED' });
    expect((err as Error).message).toMatch(
      /Envoy exited \(exit code \d+\) before its admin interface came up/,
    );
    expect((err as Error).message).toContain('NOT_A_TYPE');
    expect(pids).toHaveLength(1);
    expect(processExists(pids[0] ?? -1)).toBe(false);
    expect(s.restarts).toBe(0);
    expect((await readdir(e.dir)).filter((n) => n.startsWith('envoy-'))).toEqual([]);
  });

  it('fails start() with SKEIN_ENVOY_START_FAILED when the binary does not run', async () => {
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const { logger } = captureLogger();
    const s = new EnvoySupervisor({
      envoyPath: path.join(dir.path, 'no-envoy-here'),
      bootstrapPath: path.join(dir.path, 'bootstrap.json'),
      logger,
      runDir: dir.path,
    });
    await expect(s.start()).rejects.toMatchObject({
      code: 'SKEIN_ENVOY_START_FAILED',
      message: expect.stringContaining('ENOENT'),
    });
    await expect(s.stop()).resolves.toBeUndefined();
  });

  it('kills Envoy and removes its files when the Node process exits without stop()', async () => {
    const envoy = await ensureEnvoy();
    const dir = await tempDir();
    cleanups.push(() => dir.remove());
    const fixture = fileURLToPath(new URL('./fixtures/exitWithoutStop.ts', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', fixture, envoy.path, dir.path],
        { timeout: 30_000 },
        (err, stdout, stderr) =>
          err === null ? resolve(stdout) : reject(new Error(`${err.message}\n${stderr}`)),
      );
    });
    const { pid, privateDir, baseId } = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as {
      pid: number;
      privateDir: string;
      baseId: string;
    };
    expect(pid).toBeGreaterThan(0);
    expect(privateDir).toMatch(/^envoy-/);
    // The orphan is reparented and reaped by init; a zombie until then, which counts as gone.
    await waitFor('the orphaned Envoy to be gone', () => (isRunning(pid) ? undefined : true), 5000);
    expect(existsSync(path.join(dir.path, privateDir))).toBe(false);
    if (process.platform === 'linux') expect(existsSync(shm(baseId))).toBe(false);
  });

  it('validates its options up front', async () => {
    const envoy = await ensureEnvoy();
    const { logger } = captureLogger();
    const make = (extra: object) => () =>
      new EnvoySupervisor({ envoyPath: envoy.path, bootstrapPath: '/nonexistent', logger, ...extra });
    expect(make({ drainTimeoutMs: -1 })).toThrow('Cannot set drainTimeoutMs to -1');
    expect(make({ backoff: { initialMs: Number.NaN } })).toThrow('Cannot set backoff.initialMs to NaN');
    expect(make({ concurrency: 0 })).toThrow('Cannot set concurrency to 0');
  });
});
