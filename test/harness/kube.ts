// A real Kubernetes API server for tests: etcd and kube-apiserver (built by `node scripts/setup.mjs kube`)
// on 127.0.0.1, with a generated CA and serving certificate, static tokens, RBAC, and the Gateway API
// CRDs installed. No controller-manager, scheduler or kubelet: objects are stored and validated, watches
// work, but nothing reconciles them (a deleted namespace stays Terminating; use unique names instead).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { ensureKubeBinaries, type KubeBinaries } from './kubeBinaries.js';
import { createCa, rsaKeyPair } from './pki.js';

/** What a test needs to talk to the API server; plain data, so vitest can `provide` it to workers. */
export interface KubeConnection {
  /** A kubeconfig for the admin user (context `skein-test`). */
  readonly kubeconfigPath: string;
  /** `https://127.0.0.1:<port>`. */
  readonly server: string;
  /** Bearer token of `skein-admin`, in group `system:masters`. */
  readonly token: string;
  /** Bearer token of `skein-user`: authenticated, but granted nothing by RBAC. */
  readonly userToken: string;
  /** The CA that signed the serving certificate. */
  readonly caPem: string;
}

export interface KubeCluster extends KubeConnection {
  /** `http://127.0.0.1:<port>` (plain HTTP, loopback only). */
  readonly etcdUrl: string;
  /** The temporary directory holding certificates, etcd data and logs (removed by stop()). */
  readonly dir: string;
  /** Stops kube-apiserver and starts it again on the same port with the same etcd; resolves when ready. */
  restartApiServer(): Promise<void>;
  /** Kills both processes by pid (SIGTERM, then SIGKILL after a grace period) and removes `dir`. */
  stop(): Promise<void>;
}

export interface StartKubeOptions {
  /** Install the Gateway API CRDs (experimental channel, a superset of standard). Default true. */
  readonly gatewayApi?: boolean;
  /** Extra kube-apiserver flags, e.g. `--feature-gates=…`. */
  readonly apiserverArgs?: readonly string[];
  /** Bound on waiting for /readyz after each (re)start. Default 90 s (startup takes ~10 s on 2 cores). */
  readonly readyTimeoutMs?: number;
  /** Keep `dir` (logs, etcd data) after stop() for debugging. Default: SKEIN_KEEP_KUBE_DIR is set. */
  readonly keepDir?: boolean;
}

const STOP_GRACE_MS = 10_000;
const CONTEXT = 'skein-test';

// ---------------------------------------------------------------------------------------------------
// Child processes

/** Every child started here, so an exiting test process can take them down with it. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: SIGKILL by pid, no waiting.
  process.on('exit', () => {
    for (const child of live) if (child.pid !== undefined && child.exitCode === null) child.kill('SIGKILL');
  });
}

/**
 * util-linux's `setpriv`, when present: `setpriv --pdeathsig KILL -- <bin>` makes the kernel kill the
 * binary when the process that started it dies, whatever way it dies (a test run stopped with Ctrl-C or
 * killed outright runs no 'exit' handler). It execs the binary, so the pid stays the binary's own.
 */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Resolves with the exit code or signal when the process ends. */
  readonly exited: Promise<string>;
}

function startProcess(name: string, bin: string, args: readonly string[], logFile: string): Proc {
  installExitHook();
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child =
      SETPRIV !== undefined
        ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args], { stdio: ['ignore', fd, fd] })
        : spawn(bin, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  live.add(child);
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(`failed to start: ${err.message}`));
    child.once('exit', (code, signal) => resolve(signal ?? `exit code ${code}`));
  }).finally(() => live.delete(child));
  return { name, child, logFile, exited };
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function stopProcess(p: Proc, graceMs = STOP_GRACE_MS): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null || p.child.pid === undefined) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  try {
    await p.exited;
  } finally {
    clearTimeout(timer);
  }
}

async function logTail(file: string, lines = 30): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Polls `check` every 100 ms until it returns true, at most `timeoutMs`; fails at once when `proc`
 * exits, with the end of its log.
 */
async function waitUntil(
  what: string,
  proc: Proc,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  let exit: string | undefined;
  void proc.exited.then((e) => {
    exit = e;
  });
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (exit !== undefined) {
      throw new Error(
        `${proc.name} exited (${exit}) before ${what}; end of ${proc.logFile}:\n${await logTail(proc.logFile)}`,
      );
    }
    try {
      if (await check()) return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}; end of ${proc.logFile}:\n${await logTail(proc.logFile)}`,
  );
}

/** A port that was free on 127.0.0.1 a moment ago (the kernel's pick for port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Talking to the API server (the harness's own needs; tests use @kubernetes/client-node)

export interface KubeResponse {
  readonly status: number;
  readonly body: string;
}

/** One HTTPS request to the API server, bounded to 15 s. `token` undefined sends no Authorization. */
export function kubeRequest(
  conn: Pick<KubeConnection, 'server' | 'caPem'>,
  opts: {
    readonly method?: string;
    readonly path: string;
    readonly token?: string | undefined;
    readonly body?: string;
    readonly contentType?: string;
  },
): Promise<KubeResponse> {
  const url = new URL(opts.path, conn.server);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.token !== undefined) headers['authorization'] = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method: opts.method ?? 'GET', ca: conn.caPem, headers, timeout: 15_000, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${opts.path} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

function httpGet(url: string): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5_000, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------------
// Gateway API CRDs

interface Crd {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly spec: { readonly group: string; readonly names: { readonly plural: string } };
}

interface CrdStatus {
  readonly status?: { readonly conditions?: readonly { readonly type: string; readonly status: string }[] };
}

/** The CustomResourceDefinitions in a channel directory of the Gateway API bundle, sorted by name. */
export async function readGatewayApiCrds(
  bin: Pick<KubeBinaries, 'gatewayApiCrds'>,
  channel: 'standard' | 'experimental' = 'experimental',
): Promise<Crd[]> {
  const dir = path.join(bin.gatewayApiCrds, channel);
  const crds: Crd[] = [];
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(path.join(dir, file), 'utf8'))) {
      const obj = doc.toJS() as Partial<Crd> | null;
      // The bundle also holds a ValidatingAdmissionPolicy that guards CRD upgrades; tests do not need it.
      if (obj?.kind === 'CustomResourceDefinition') crds.push(obj as Crd);
    }
  }
  return crds;
}

/** Server-side applies each CRD, then waits until every one is Established and served. */
async function installCrds(
  conn: KubeConnection,
  crds: readonly Crd[],
  proc: Proc,
  timeoutMs: number,
): Promise<void> {
  await Promise.all(
    crds.map(async (crd) => {
      const res = await kubeRequest(conn, {
        method: 'PATCH',
        path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}?fieldManager=skein-test-harness&force=true`,
        token: conn.token,
        body: JSON.stringify(crd),
        contentType: 'application/apply-patch+yaml',
      });
      if (res.status !== 200 && res.status !== 201) {
        throw new Error(`installing CRD ${crd.metadata.name} failed (${res.status}): ${res.body}`);
      }
    }),
  );
  for (const crd of crds) {
    await waitUntil(`CRD ${crd.metadata.name} to be Established`, proc, timeoutMs, async () => {
      const res = await kubeRequest(conn, {
        path: `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
        token: conn.token,
      });
      const conditions = (JSON.parse(res.body) as CrdStatus).status?.conditions ?? [];
      return conditions.some((c) => c.type === 'Established' && c.status === 'True');
    });
  }
  // Established means the API server will serve the kind; discovery follows a moment later, and clients
  // that read discovery first (kubectl, helm) need it.
  const groups = new Map<string, Set<string>>();
  for (const crd of crds) {
    const set = groups.get(crd.spec.group) ?? new Set<string>();
    set.add(crd.spec.names.plural);
    groups.set(crd.spec.group, set);
  }
  for (const [group, plurals] of groups) {
    await waitUntil(`discovery of ${group}`, proc, timeoutMs, async () => {
      const res = await kubeRequest(conn, { path: `/apis/${group}`, token: conn.token });
      if (res.status !== 200) return false;
      const versions = (JSON.parse(res.body) as { versions?: { groupVersion: string }[] }).versions ?? [];
      const served = new Set<string>();
      for (const v of versions) {
        const list = await kubeRequest(conn, { path: `/apis/${v.groupVersion}`, token: conn.token });
        if (list.status !== 200) continue;
        for (const r of (JSON.parse(list.body) as { resources?: { name: string }[] }).resources ?? []) {
          served.add(r.name);
        }
      }
      return [...plurals].every((p) => served.has(p));
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// The cluster

/**
 * Starts etcd and kube-apiserver on 127.0.0.1 (random free ports, data in a temporary directory), waits
 * for /readyz, writes a kubeconfig, and installs the Gateway API CRDs. Always call stop().
 */
export async function startKube(opts: StartKubeOptions = {}): Promise<KubeCluster> {
  const bin = await ensureKubeBinaries();
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  const keepDir = opts.keepDir ?? (process.env['SKEIN_KEEP_KUBE_DIR'] ?? '') !== '';
  await removeAbandonedDirs();
  // The pid in the name lets a later run remove the directory if this process dies without stop().
  const dir = await mkdtemp(path.join(os.tmpdir(), `skein-kube-${process.pid}-`));
  const procs: { etcd?: Proc; apiserver?: Proc } = {};

  async function stop(): Promise<void> {
    if (procs.apiserver !== undefined) await stopProcess(procs.apiserver);
    if (procs.etcd !== undefined) await stopProcess(procs.etcd);
    if (keepDir) process.stderr.write(`skein kube harness: kept ${dir}\n`);
    else await rm(dir, { recursive: true, force: true });
  }

  try {
    // PKI: a CA, the serving certificate for 127.0.0.1 (and the in-cluster names, for completeness),
    // and the key pair that signs and verifies service-account tokens.
    const ca = createCa('skein-test-ca');
    const serving = ca.issue({
      commonName: 'kube-apiserver',
      usage: 'server',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'],
    });
    const sa = rsaKeyPair();
    const token = randomBytes(24).toString('hex');
    const userToken = randomBytes(24).toString('hex');
    const files = {
      ca: path.join(dir, 'ca.crt'),
      cert: path.join(dir, 'apiserver.crt'),
      key: path.join(dir, 'apiserver.key'),
      saPub: path.join(dir, 'sa.pub'),
      saKey: path.join(dir, 'sa.key'),
      tokens: path.join(dir, 'tokens.csv'),
      kubeconfig: path.join(dir, 'kubeconfig.yaml'),
    };
    await writeFile(files.ca, ca.certPem);
    await writeFile(files.cert, serving.certPem);
    await writeFile(files.key, serving.keyPem, { mode: 0o600 });
    await writeFile(files.saPub, sa.publicKeyPem);
    await writeFile(files.saKey, sa.privateKeyPem, { mode: 0o600 });
    // token,user,uid,"group,group"
    await writeFile(
      files.tokens,
      `${token},skein-admin,skein-admin,"system:masters"\n${userToken},skein-user,skein-user,\n`,
      { mode: 0o600 },
    );

    // etcd: one member, plain HTTP on loopback, no fsync (test data only).
    const [clientPort, peerPort, securePort] = await distinctFreePorts(3);
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    procs.etcd = startProcess(
      'etcd',
      bin.etcd,
      [
        '--name=skein-test',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=skein-test=${peerUrl}`,
        '--initial-cluster-state=new',
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      path.join(dir, 'etcd.log'),
    );
    const etcd = procs.etcd;
    await waitUntil('etcd /health', etcd, 30_000, async () => {
      const res = await httpGet(`${etcdUrl}/health`);
      return res.status === 200 && (JSON.parse(res.body) as { health?: string }).health === 'true';
    });

    const server = `https://127.0.0.1:${securePort}`;
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${securePort}`,
      `--tls-cert-file=${files.cert}`,
      `--tls-private-key-file=${files.key}`,
      `--token-auth-file=${files.tokens}`,
      '--authorization-mode=RBAC',
      '--anonymous-auth=false',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${files.saPub}`,
      `--service-account-signing-key-file=${files.saKey}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      // The endpoint reconciler refuses a loopback advertise address; nothing here needs the endpoints of
      // the `kubernetes` Service (the Service itself is still created).
      '--endpoint-reconciler-type=none',
      // No controller-manager creates `default` ServiceAccounts, so this plugin would reject every Pod.
      '--disable-admission-plugins=ServiceAccount',
      '--profiling=false',
      // As on kubeadm, kind and k3s clusters: node agents (the chart's bpffs init container) are
      // privileged, and the default (false) refuses such Pod templates.
      '--allow-privileged=true',
      // One server serves every Kubernetes test file of a run at once, each with its agents' dozen
      // informers (as non-admin users: API Priority and Fairness's global-default level). The defaults
      // (400/200 seats in all) let parallel files' watch starts get 429s; a busy cluster sizes up too.
      '--max-requests-inflight=2000',
      '--max-mutating-requests-inflight=1000',
      ...(opts.apiserverArgs ?? []),
    ];
    const conn: KubeConnection = {
      kubeconfigPath: files.kubeconfig,
      server,
      token,
      userToken,
      caPem: ca.certPem,
    };
    const logFile = path.join(dir, 'kube-apiserver.log');
    const startApiServer = async (): Promise<void> => {
      procs.apiserver = startProcess('kube-apiserver', bin.kubeApiserver, apiserverArgs, logFile);
      await waitUntil('kube-apiserver /readyz', procs.apiserver, readyTimeoutMs, async () => {
        const res = await kubeRequest(conn, { path: '/readyz', token });
        return res.status === 200;
      });
    };
    await startApiServer();

    await writeFile(
      files.kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: CONTEXT,
            cluster: { server, 'certificate-authority-data': Buffer.from(ca.certPem).toString('base64') },
          },
        ],
        users: [{ name: 'skein-admin', user: { token } }],
        contexts: [{ name: CONTEXT, context: { cluster: CONTEXT, user: 'skein-admin' } }],
        'current-context': CONTEXT,
      }),
      { mode: 0o600 },
    );

    if (opts.gatewayApi ?? true) {
      const apiserver = procs.apiserver;
      if (apiserver === undefined) throw new Error('kube-apiserver is not running');
      await installCrds(conn, await readGatewayApiCrds(bin), apiserver, 30_000);
    }

    return {
      ...conn,
      etcdUrl,
      dir,
      async restartApiServer() {
        if (procs.apiserver !== undefined) await stopProcess(procs.apiserver);
        await startApiServer();
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function distinctFreePorts(n: 3): Promise<[number, number, number]> {
  const ports = new Set<number>();
  for (let i = 0; ports.size < n && i < 20; i++) ports.add(await freePort());
  const [a, b, c] = [...ports];
  if (a === undefined || b === undefined || c === undefined) {
    throw new Error(`could not find ${n} distinct free ports on 127.0.0.1`);
  }
  return [a, b, c];
}

/** Removes `skein-kube-<pid>-*` temporary directories whose process is gone (killed before stop()). */
async function removeAbandonedDirs(): Promise<void> {
  for (const name of await readdir(os.tmpdir()).catch(() => [])) {
    const m = /^skein-kube-(\d+)-/.exec(name);
    if (m === null || processExists(Number(m[1]))) continue;
    await rm(path.join(os.tmpdir(), name), { recursive: true, force: true });
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
