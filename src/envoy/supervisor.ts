import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync, rmSync, unlinkSync } from 'node:fs';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Level } from 'pino';
import type { Logger } from '../log.js';
import { drainListeners, getReady, getStats } from './admin.js';
import { isLoopbackAddress } from './bootstrap.js';
import { ENVOY_VERSION, envoyVersion } from './findEnvoy.js';

/**
 * Runs one Envoy as a child process and keeps it running: forwards its logs to pino, restarts it with
 * exponential backoff when it dies, and drains it gracefully on stop. Processes are only ever signalled
 * by pid.
 */

export type EnvoyLogLevel = 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';

export interface EnvoySupervisorOptions {
  readonly envoyPath: string;
  /** The bootstrap file for `-c` (see renderBootstrap). Its admin must be on loopback; start() checks. */
  readonly bootstrapPath: string;
  readonly logger: Logger;
  /** Where runtime files go (admin address, base id), in a private subdirectory removed by stop(). */
  readonly runDir?: string;
  /**
   * On stop: how long to let connections drain after `POST /drain_listeners?graceful` before SIGTERM.
   * 0 skips draining. Default 5000 ms.
   */
  readonly drainTimeoutMs?: number;
  /**
   * Envoy's `--drain-time-s`: how long Envoy spreads a graceful drain, on stop and when LDS removes or
   * changes a listener. Default: the drain timeout rounded up to whole seconds (at least 1).
   */
  readonly drainTimeS?: number;
  /** After SIGTERM, how long before SIGKILL. Default 5000 ms. */
  readonly killGraceMs?: number;
  /** How long a (re)started Envoy has to bring its admin interface up. Default 15000 ms. */
  readonly startTimeoutMs?: number;
  /** Restart backoff: first delay, cap, and how long a run must last to reset it. 250 ms, 10 s, 30 s. */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number; readonly resetAfterMs?: number };
  /** Envoy's `--log-format` (spdlog syntax). The default format is parsed into levels and scopes. */
  readonly logFormat?: string;
  /** Envoy's `-l`. */
  readonly logLevel?: EnvoyLogLevel;
  /** Envoy's `--concurrency` (worker threads). Default: Envoy's (one per hardware thread). */
  readonly concurrency?: number;
  /** More command-line arguments, appended last. */
  readonly extraArgs?: readonly string[];
  /** The environment for Envoy. Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface EnvoySupervisorEvents {
  /** A process was spawned (the first one, or a restart). */
  started: [pid: number];
  /** A process exited, expectedly or not. */
  exit: [code: number | null, signal: NodeJS.Signals | null];
  /** An unexpected exit; a new process is spawned after delayMs unless stop() comes first. */
  restarting: [delayMs: number];
  /** The current process reported LIVE on /ready. */
  ready: [];
}

export type EnvoySupervisorErrorCode =
  /** start() on a supervisor that is already running. */
  | 'SKEIN_ENVOY_ALREADY_STARTED'
  /** Envoy did not run, or exited before its admin interface came up (bad bootstrap, port in use …). */
  | 'SKEIN_ENVOY_START_FAILED'
  /** Envoy ran but its admin interface did not come up in time. */
  | 'SKEIN_ENVOY_START_TIMEOUT'
  /** Envoy bound admin to a non-loopback address: killed, since admin can reconfigure and stop it. */
  | 'SKEIN_ENVOY_ADMIN_NOT_LOOPBACK'
  /** waitReady() timed out before /ready said LIVE. */
  | 'SKEIN_ENVOY_NOT_READY'
  /** waitReady() on a supervisor that is stopped or stopping. */
  | 'SKEIN_ENVOY_NOT_RUNNING';

export class EnvoySupervisorError extends Error {
  override readonly name = 'EnvoySupervisorError';
  constructor(
    readonly code: EnvoySupervisorErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type State = 'idle' | 'starting' | 'running' | 'backoff' | 'stopping';

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One Envoy process. */
interface Instance {
  readonly seq: number;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly startedAt: number;
  readonly adminAddressPath: string;
  readonly baseIdPath: string;
  /** Set once admin answers on the address Envoy wrote. */
  adminUrl: string | undefined;
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  /** Resolves when the process has exited and its stdout/stderr are closed (every line forwarded). */
  readonly closed: Promise<void>;
  /** The last stderr lines, for start-up failure messages. */
  readonly tail: string[];
}

const TAIL_LINES = 20;

export class EnvoySupervisor extends EventEmitter<EnvoySupervisorEvents> {
  readonly #opts: EnvoySupervisorOptions;
  readonly #log: Logger;
  readonly #drainTimeoutMs: number;
  readonly #killGraceMs: number;
  readonly #startTimeoutMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #backoffResetMs: number;

  #state: State = 'idle';
  /** Bumped by every start() and stop(), so a start() that stop() overtook never carries on. */
  #generation = 0;
  #dir: string | undefined;
  #current: Instance | undefined;
  #seq = 0;
  #restarts = 0;
  #failures = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;
  #version: string | undefined;
  /**
   * If this Node process exits without stop(), kill the child and remove our files (synchronously: it runs
   * in process.on('exit')). Never leave an orphan Envoy behind.
   */
  readonly #onProcessExit = (): void => {
    const current = this.#current;
    if (current !== undefined && current.exit === undefined && current.pid > 0) {
      try {
        process.kill(current.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      if (current !== undefined) {
        const shm = sharedMemoryPath(readFileSync(current.baseIdPath, 'utf8'));
        if (shm !== undefined) unlinkSync(shm);
      }
    } catch {
      // nothing to remove
    }
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true });
  };

  constructor(opts: EnvoySupervisorOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'envoy-supervisor' });
    this.#drainTimeoutMs = nonNegative('drainTimeoutMs', opts.drainTimeoutMs, 5000);
    this.#killGraceMs = nonNegative('killGraceMs', opts.killGraceMs, 5000);
    this.#startTimeoutMs = nonNegative('startTimeoutMs', opts.startTimeoutMs, 15_000);
    this.#backoffInitialMs = nonNegative('backoff.initialMs', opts.backoff?.initialMs, 250);
    this.#backoffMaxMs = nonNegative('backoff.maxMs', opts.backoff?.maxMs, 10_000);
    this.#backoffResetMs = nonNegative('backoff.resetAfterMs', opts.backoff?.resetAfterMs, 30_000);
    if (opts.drainTimeS !== undefined) nonNegative('drainTimeS', opts.drainTimeS, 0);
    if (opts.concurrency !== undefined && !(Number.isInteger(opts.concurrency) && opts.concurrency >= 1)) {
      throw new TypeError(
        `Cannot set concurrency to ${opts.concurrency}: it must be an integer of at least 1`,
      );
    }
  }

  /** The current Envoy's pid, while one runs. */
  get pid(): number | undefined {
    return this.#current?.exit === undefined ? this.#current?.pid : undefined;
  }

  /** `http://127.0.0.1:<port>` of the current Envoy's admin, once it answers. Changes on restart if port 0. */
  get adminUrl(): string | undefined {
    return this.#current?.exit === undefined ? this.#current?.adminUrl : undefined;
  }

  /** How many times Envoy was restarted after an unexpected exit. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The Envoy release (`1.40.0`), known after start(). */
  get version(): string | undefined {
    return this.#version;
  }

  /**
   * Spawns Envoy and resolves once its admin interface answers. Fails (and leaves nothing running) if
   * Envoy exits first or does not come up within startTimeoutMs; the first start is not retried, since a
   * bad bootstrap would fail the same way again.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') {
      throw new EnvoySupervisorError(
        'SKEIN_ENVOY_ALREADY_STARTED',
        `Cannot start Envoy: it is ${this.#state}`,
      );
    }
    this.#state = 'starting';
    const generation = ++this.#generation;
    const superseded = (): boolean => this.#generation !== generation || this.#state !== 'starting';
    this.#restarts = 0;
    this.#failures = 0;
    try {
      try {
        this.#version = await envoyVersion(this.#opts.envoyPath, this.#opts.env ?? process.env);
      } catch (err) {
        throw new EnvoySupervisorError(
          'SKEIN_ENVOY_START_FAILED',
          `Cannot run Envoy at ${this.#opts.envoyPath}: ${(err as Error).message}`,
        );
      }
      const note = this.#version === ENVOY_VERSION ? '' : ` (Skein is tested with ${ENVOY_VERSION})`;
      this.#log.info(
        { version: this.#version, path: this.#opts.envoyPath },
        `starting Envoy ${this.#version}${note}`,
      );
      const dir = await mkdtemp(path.join(this.#opts.runDir ?? os.tmpdir(), 'envoy-'));
      if (superseded()) {
        await rm(dir, { recursive: true, force: true });
        throw stoppedDuringStart();
      }
      this.#dir = dir;
      process.on('exit', this.#onProcessExit);
      const instance = this.#spawn();
      await this.#awaitAdmin(instance);
      if (superseded()) throw stoppedDuringStart();
      this.#state = 'running';
      void this.#watchReady(instance);
    } catch (err) {
      if (!superseded()) {
        this.#state = 'stopping';
        await this.#terminate(this.#current, 0);
        await this.#cleanup();
        throw err;
      }
      // stop() came in while starting; it ends the process and cleans up.
      throw stoppedDuringStart();
    }
  }

  /**
   * Drains and stops Envoy: `POST /drain_listeners?graceful`, waits until no downstream connection is open
   * (at most drainTimeoutMs), then SIGTERM, then SIGKILL after killGraceMs. Resolves once the process is
   * gone. During a restart backoff it cancels the restart. Safe to call more than once.
   */
  stop(): Promise<void> {
    if (this.#stopping !== undefined) return this.#stopping;
    if (this.#state === 'idle') return Promise.resolve();
    this.#state = 'stopping';
    this.#generation++;
    if (this.#restartTimer !== undefined) {
      clearTimeout(this.#restartTimer);
      this.#restartTimer = undefined;
    }
    this.#stopping = (async () => {
      try {
        await this.#terminate(this.#current, this.#drainTimeoutMs);
      } finally {
        await this.#cleanup();
        this.#stopping = undefined;
      }
    })();
    return this.#stopping;
  }

  /** Resolves when the current Envoy's /ready says LIVE; polls across restarts until timeoutMs. */
  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastState: string | undefined;
    let lastError = 'admin is not up yet';
    for (;;) {
      if (this.#state === 'idle' || this.#state === 'stopping') {
        throw new EnvoySupervisorError(
          'SKEIN_ENVOY_NOT_RUNNING',
          `Cannot wait for Envoy to be ready: it is ${this.#state}`,
        );
      }
      const url = this.adminUrl;
      const remaining = deadline - Date.now();
      if (url !== undefined && remaining > 0) {
        try {
          lastState = await getReady(url, { timeoutMs: Math.min(remaining, 1000) });
          if (lastState === 'LIVE') return;
        } catch (err) {
          lastError = (err as Error).message;
        }
      }
      if (Date.now() >= deadline) {
        const last = lastState === undefined ? lastError : `state ${lastState}`;
        throw new EnvoySupervisorError(
          'SKEIN_ENVOY_NOT_READY',
          `Envoy was not LIVE within ${timeoutMs} ms (last: ${last})`,
        );
      }
      await sleep(Math.min(50, Math.max(0, deadline - Date.now())));
    }
  }

  #args(instance: { adminAddressPath: string; baseIdPath: string }): string[] {
    const o = this.#opts;
    const drainTimeS = o.drainTimeS ?? Math.max(1, Math.ceil(this.#drainTimeoutMs / 1000));
    const args = [
      '-c',
      o.bootstrapPath,
      // Pick a free shared-memory/hot-restart id so several Envoys can run on one machine.
      '--use-dynamic-base-id',
      '--base-id-path',
      instance.baseIdPath,
      // Envoy writes the admin address it bound (port 0 becomes a real port) here once admin listens.
      '--admin-address-path',
      instance.adminAddressPath,
      '--drain-time-s',
      String(drainTimeS),
    ];
    if (o.logFormat !== undefined) args.push('--log-format', o.logFormat);
    if (o.logLevel !== undefined) args.push('-l', o.logLevel);
    if (o.concurrency !== undefined) args.push('--concurrency', String(o.concurrency));
    args.push(...(o.extraArgs ?? []));
    return args;
  }

  #spawn(): Instance {
    const dir = this.#dir;
    if (dir === undefined) throw new Error('EnvoySupervisor: no run directory (start() not called)');
    const seq = ++this.#seq;
    const paths = {
      adminAddressPath: path.join(dir, `admin-address.${seq}`),
      baseIdPath: path.join(dir, `base-id.${seq}`),
    };
    const child = spawn(this.#opts.envoyPath, this.#args(paths), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: this.#opts.env ?? process.env,
    });
    let onExit: (e: Exit) => void = () => {};
    const exited = new Promise<Exit>((resolve) => {
      onExit = resolve;
    });
    const tail: string[] = [];
    // A spawn failure (ENOENT, EACCES) emits 'error' and no pid; treat it as an immediate exit.
    const pid = child.pid ?? -1;
    const log = this.#opts.logger.child({ component: 'envoy', pid });
    const logStderr = stderrForwarder(log);
    const instance: Instance = {
      seq,
      child,
      pid,
      startedAt: Date.now(),
      ...paths,
      adminUrl: undefined,
      exit: undefined,
      exited,
      closed: Promise.all([
        exited,
        forwardLines(child.stdout, (line) => logStdout(log, line)),
        forwardLines(child.stderr, (line) => {
          tail.push(line);
          if (tail.length > TAIL_LINES) tail.shift();
          logStderr(line);
        }),
      ]).then(() => {}),
      tail,
    };
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (instance.exit !== undefined) return;
      instance.exit = { code, signal };
      onExit(instance.exit);
      this.#onExit(instance);
    };
    child.once('exit', finish);
    child.once('error', (err) => {
      this.#log.error({ err, pid: child.pid }, `Envoy process error: ${err.message}`);
      if (child.pid === undefined) {
        tail.push(err.message);
        finish(null, null);
      }
    });
    this.#current = instance;
    if (child.pid !== undefined) {
      this.#log.info({ pid }, `Envoy started (pid ${pid})`);
      this.emit('started', pid);
    }
    return instance;
  }

  /** Waits until Envoy wrote its admin address and admin answers on it. Throws if it exits or times out. */
  async #awaitAdmin(instance: Instance): Promise<string> {
    const deadline = Date.now() + this.#startTimeoutMs;
    while (instance.exit === undefined) {
      const address = await readFile(instance.adminAddressPath, 'utf8').catch(() => '');
      // `127.0.0.1:9901` or `[::1]:9901`; Envoy writes it once admin listens, but maybe not atomically,
      // hence the check below that admin answers there.
      const host = /^(.+):\d+$/.exec(address.trim())?.[1];
      if (host !== undefined) {
        if (!isLoopbackAddress(host)) {
          await this.#terminate(instance, 0);
          throw new EnvoySupervisorError(
            'SKEIN_ENVOY_ADMIN_NOT_LOOPBACK',
            `Envoy's admin interface listened on ${address.trim()}, which is not loopback; Envoy was stopped. Set the bootstrap's admin address to 127.0.0.1`,
          );
        }
        const url = `http://${address.trim()}`;
        const answered = await getReady(url, { timeoutMs: 1000 }).then(
          () => true,
          () => false,
        );
        if (answered && instance.exit === undefined) {
          instance.adminUrl = url;
          this.#log.info({ pid: instance.pid, adminUrl: url }, `Envoy admin on ${url}`);
          return url;
        }
      }
      if (Date.now() >= deadline) {
        await this.#terminate(instance, 0);
        throw new EnvoySupervisorError(
          'SKEIN_ENVOY_START_TIMEOUT',
          `Envoy (pid ${instance.pid}) did not bring its admin interface up within ${this.#startTimeoutMs} ms${formatTail(instance.tail)}`,
        );
      }
      await within(instance.exited, 25);
    }
    await within(instance.closed, 1000);
    const e = instance.exit;
    throw new EnvoySupervisorError(
      'SKEIN_ENVOY_START_FAILED',
      `Envoy exited (${describeExit(e)}) before its admin interface came up${formatTail(instance.tail)}`,
    );
  }

  /** Polls /ready (every 100 ms, slowing to 500 ms) until LIVE, then emits 'ready'. Ends with the process. */
  async #watchReady(instance: Instance): Promise<void> {
    let interval = 100;
    while (instance.exit === undefined && this.#current === instance && this.#state === 'running') {
      const url = instance.adminUrl;
      if (url !== undefined) {
        const state = await getReady(url, { timeoutMs: 1000 }).catch(() => undefined);
        if (state === 'LIVE' && instance.exit === undefined && this.#state === 'running') {
          this.#log.info({ pid: instance.pid }, 'Envoy is LIVE');
          this.emit('ready');
          return;
        }
      }
      await within(instance.exited, interval);
      interval = Math.min(interval * 2, 500);
    }
  }

  #onExit(instance: Instance): void {
    const exit = instance.exit ?? { code: null, signal: null };
    this.emit('exit', exit.code, exit.signal);
    void this.#removeSharedMemory(instance);
    if (instance !== this.#current || this.#state !== 'running') return;

    // Unexpected: back off exponentially, but start over once a run lasted long enough to count as healthy.
    if (Date.now() - instance.startedAt >= this.#backoffResetMs) this.#failures = 0;
    const delayMs = Math.min(this.#backoffInitialMs * 2 ** this.#failures, this.#backoffMaxMs);
    this.#failures++;
    this.#state = 'backoff';
    this.#log.warn(
      { pid: instance.pid, code: exit.code, signal: exit.signal, delayMs },
      `Envoy exited unexpectedly (${describeExit(exit)}); restarting in ${delayMs} ms`,
    );
    this.emit('restarting', delayMs);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#state !== 'backoff') return;
      this.#state = 'running';
      this.#restarts++;
      const next = this.#spawn();
      this.#awaitAdmin(next).then(
        () => this.#watchReady(next),
        (err: unknown) => {
          // If it exited, #onExit has logged that and scheduled the next attempt. If it hung or bound admin
          // off loopback, it was killed, and its exit schedules the next attempt.
          const code = err instanceof EnvoySupervisorError ? err.code : undefined;
          if (code !== 'SKEIN_ENVOY_START_FAILED' && this.#state !== 'stopping') {
            this.#log.error({ err }, `restarted Envoy did not come up: ${(err as Error).message}`);
          }
        },
      );
    }, delayMs);
  }

  /**
   * Ends one process: graceful drain (if drainMs > 0 and admin is known), SIGTERM, SIGKILL after the grace
   * period. Resolves when it has exited and its output is forwarded.
   */
  async #terminate(instance: Instance | undefined, drainMs: number): Promise<void> {
    if (instance === undefined || instance.pid < 0) return;
    if (instance.exit === undefined && drainMs > 0 && instance.adminUrl !== undefined) {
      await this.#drain(instance, instance.adminUrl, drainMs);
    }
    if (instance.exit === undefined) {
      signal(instance.pid, 'SIGTERM');
      if (!(await within(instance.exited, this.#killGraceMs))) {
        this.#log.warn(
          { pid: instance.pid },
          `Envoy did not exit ${this.#killGraceMs} ms after SIGTERM; sending SIGKILL`,
        );
        signal(instance.pid, 'SIGKILL');
      }
    }
    await instance.exited;
    // stdout/stderr close right after exit; bound the wait in case a descendant inherited them.
    await within(instance.closed, 1000);
  }

  async #drain(instance: Instance, adminUrl: string, drainMs: number): Promise<void> {
    const deadline = Date.now() + drainMs;
    try {
      await drainListeners(adminUrl, { graceful: true, timeoutMs: Math.min(drainMs, 2000) });
    } catch (err) {
      this.#log.warn(
        { err, pid: instance.pid },
        `Envoy did not accept the drain request: ${(err as Error).message}`,
      );
      return;
    }
    this.#log.info({ pid: instance.pid, drainTimeoutMs: drainMs }, 'draining Envoy listeners');
    while (instance.exit === undefined && Date.now() < deadline) {
      const open = await openDownstreamConnections(
        adminUrl,
        Math.max(1, Math.min(1000, deadline - Date.now())),
      );
      if (open === 0) return;
      await within(instance.exited, Math.min(100, Math.max(0, deadline - Date.now())));
    }
  }

  /**
   * Envoy (with a dynamic base id) keeps a small shared-memory region for hot restart at
   * /dev/shm/envoy_shared_memory_<base id * 10 + epoch> and does not remove it on exit. We never hot
   * restart (epoch 0), so once the process is gone the region is garbage: remove it, naming it from the
   * base id Envoy itself reported.
   */
  async #removeSharedMemory(instance: Instance): Promise<void> {
    try {
      const shm = sharedMemoryPath(await readFile(instance.baseIdPath, 'utf8'));
      if (shm !== undefined) await unlink(shm);
    } catch {
      // no base id written (it died early) or nothing to remove
    }
  }

  async #cleanup(): Promise<void> {
    const last = this.#current;
    if (last !== undefined) await this.#removeSharedMemory(last);
    process.off('exit', this.#onProcessExit);
    if (this.#dir !== undefined) await rm(this.#dir, { recursive: true, force: true });
    this.#dir = undefined;
    this.#state = 'idle';
  }
}

/** The hot-restart shared memory of an epoch-0 Envoy with this base id (Linux only). */
function sharedMemoryPath(baseIdFileContent: string): string | undefined {
  const baseId = baseIdFileContent.trim();
  if (process.platform !== 'linux' || !/^\d+$/.test(baseId)) return undefined;
  return `/dev/shm/envoy_shared_memory_${BigInt(baseId) * 10n}`;
}

/** Sum of downstream_cx_active over Envoy's listeners, admin excepted; undefined if admin does not answer. */
async function openDownstreamConnections(adminUrl: string, timeoutMs: number): Promise<number | undefined> {
  try {
    const stats = await getStats(adminUrl, '^listener\\..*\\.downstream_cx_active$', { timeoutMs });
    let open = 0;
    for (const [name, value] of stats) {
      // `listener.<address>.downstream_cx_active` per listener; skip admin's own and the per-worker
      // breakdown (`listener.<address>.worker_<n>.…`), which would count each connection twice.
      if (
        name.startsWith('listener.admin.') ||
        /\.(worker_\d+|main_thread)\.downstream_cx_active$/.test(name)
      )
        continue;
      open += value;
    }
    return open;
  } catch {
    return undefined;
  }
}

/** Envoy's default log line: `[time][thread][level][scope] [file:line] message`. */
const ENVOY_LINE = /^\[[^\]]*\]\[(\d+)\]\[(\w+)\]\[([^\]]+)\] (?:\[([^\]]+)\] )?(.*)$/;

const LEVELS = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  error: 'error',
  critical: 'fatal',
} as const satisfies Record<string, Level>;

type PinoLevel = (typeof LEVELS)[keyof typeof LEVELS];

/**
 * Forwards stderr lines (Envoy's application log) at their own level. Lines that do not match the default
 * format (continuations of a multi-line message, or a custom --log-format) keep the level of the line before.
 */
function stderrForwarder(log: Logger): (line: string) => void {
  let lastLevel: PinoLevel = 'info';
  return (line) => {
    const m = ENVOY_LINE.exec(line);
    if (m === null) {
      log[lastLevel]({ stream: 'stderr' }, `${ENVOY_PREFIX}${line}`);
      return;
    }
    const [, thread, level, scope, source, message] = m;
    lastLevel = LEVELS[level as keyof typeof LEVELS] ?? 'info';
    log[lastLevel]({ scope, source, thread: Number(thread) }, `${ENVOY_PREFIX}${message ?? ''}`);
  };
}

/**
 * What every forwarded Envoy line starts with, so that in a terminal (SKEIN_LOG_FORMAT=text, which
 * shows the message and not the `component` field) Envoy's lines stand apart from Skein's own.
 */
export const ENVOY_PREFIX = '[envoy] ';

/** Forwards one stdout line: access logs. JSON lines (a JSON access log format) are kept structured. */
function logStdout(log: Logger, line: string): void {
  if (line.startsWith('{')) {
    try {
      const access: unknown = JSON.parse(line);
      log.info({ stream: 'stdout', access }, `${ENVOY_PREFIX}access`);
      return;
    } catch {
      // not JSON after all
    }
  }
  log.info({ stream: 'stdout' }, `${ENVOY_PREFIX}${line}`);
}

/** Calls onLine for each line of a stream; resolves when it ends. */
function forwardLines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): Promise<void> {
  if (stream === null) return Promise.resolve();
  return new Promise((resolve) => {
    const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on('line', (line) => {
      if (line !== '') onLine(line);
    });
    rl.once('close', resolve);
  });
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function describeExit(e: Exit | undefined): string {
  if (e === undefined) return 'unknown';
  if (e.signal !== null) return `signal ${e.signal}`;
  return e.code === null ? 'did not start' : `exit code ${e.code}`;
}

function formatTail(tail: readonly string[]): string {
  return tail.length === 0 ? '' : `; last output:\n  ${tail.join('\n  ')}`;
}

function nonNegative(name: string, value: number | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  if (!Number.isFinite(value) || value < 0) {
    throw new TypeError(`Cannot set ${name} to ${value}: it must be a non-negative number of milliseconds`);
  }
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** True if p settles within ms, else false. The timer is cleared either way, so nothing lingers. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<false>((resolve) => {
    timer = setTimeout(resolve, ms, false);
  });
  try {
    return await Promise.race([p.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function stoppedDuringStart(): EnvoySupervisorError {
  return new EnvoySupervisorError(
    'SKEIN_ENVOY_START_FAILED',
    'Cannot start Envoy: stop() was called during start()',
  );
}
