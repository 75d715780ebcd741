// Helpers for the Helm chart tests (test/kube/chart*.test.ts): the prebuilt helm, the chart's generated
// CRDs, renders parsed into objects, and the kubelet's `$(VAR)` expansion for running the chart's
// container commands as host processes.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { KubernetesObject } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { ensureKubeBinaries, KUBERNETES_VERSION } from '../harness/kubeBinaries.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const CHART_DIR = path.join(ROOT, 'charts/skein');
export const CRDS_DIR = path.join(CHART_DIR, 'charts/gateway-api-crds/crds');
const CHART_CRDS_SCRIPT = path.join(ROOT, 'scripts/chart-crds.mjs');

/** `helm template` checks the chart's kubeVersion against this (the harness API server's version). */
export const KUBE_VERSION = KUBERNETES_VERSION;

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(cmd: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr: err !== null && code === -1 ? `${stderr}${err.message}` : stderr });
    });
  });
}

/** Runs the prebuilt helm (built by setup if missing), bounded to `timeoutMs`. */
export async function helm(args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  const bin = await ensureKubeBinaries();
  return run(bin.helm, args, timeoutMs);
}

let crds: Promise<void> | undefined;

/** Runs `node scripts/chart-crds.mjs` once per test worker: crds/ is generated, not committed. */
export function ensureChartCrds(): Promise<void> {
  crds ??= (async () => {
    await ensureKubeBinaries();
    const r = await run(process.execPath, [CHART_CRDS_SCRIPT], 60_000);
    if (r.code !== 0) throw new Error(`scripts/chart-crds.mjs failed (${r.code}): ${r.stdout}${r.stderr}`);
  })();
  return crds;
}

export interface RenderOptions {
  readonly release?: string;
  readonly namespace?: string;
  /** Values, written to a temporary values file (`-f`). */
  readonly values?: Readonly<Record<string, unknown>>;
  /** `--set` expressions, after `values`. */
  readonly set?: readonly string[];
  readonly includeCrds?: boolean;
}

/** `helm template` of the chart; resolves with helm's result whether it succeeded or not. */
export async function template(opts: RenderOptions = {}): Promise<RunResult> {
  await ensureChartCrds();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-chart-'));
  try {
    const args = [
      'template',
      opts.release ?? 'skein',
      CHART_DIR,
      '--namespace',
      opts.namespace ?? 'skein-system',
      '--kube-version',
      KUBE_VERSION,
    ];
    if (opts.values !== undefined) {
      const file = path.join(dir, 'values.json');
      await writeFile(file, JSON.stringify(opts.values));
      args.push('--values', file);
    }
    for (const s of opts.set ?? []) args.push('--set', s);
    if (opts.includeCrds === true) args.push('--include-crds');
    return await helm(args);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The rendered manifests as text; throws with helm's message when it fails. */
export async function render(opts: RenderOptions = {}): Promise<string> {
  const r = await template(opts);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

export type Obj = KubernetesObject & Record<string, unknown>;

/** Every non-empty document of a multi-document YAML stream. */
export function parseManifests(text: string): Obj[] {
  const out: Obj[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`);
    const o = doc.toJS() as Obj | null;
    if (o !== null) out.push(o);
  }
  return out;
}

/** The one object of `kind` (named `name`, if given); throws if there is not exactly one. */
export function only(objects: readonly Obj[], kind: string, name?: string): Obj {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata?.name === name));
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as Obj;
}

/** A pod template's spec from a DaemonSet or Deployment. */
export interface Container {
  readonly name: string;
  readonly image?: string;
  readonly command?: readonly string[];
  readonly args?: readonly string[];
  readonly env?: readonly { name: string; value?: string }[];
  readonly securityContext?: {
    readonly capabilities?: { readonly add?: readonly string[]; readonly drop?: readonly string[] };
  } & Record<string, unknown>;
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly startupProbe?: Probe;
  readonly volumeMounts?: readonly { name: string; mountPath: string }[];
}

export interface Probe {
  readonly httpGet?: { readonly host?: string; readonly port: number | string; readonly path: string };
}

export interface PodSpec {
  readonly containers: readonly Container[];
  readonly initContainers?: readonly Container[];
  readonly hostNetwork?: boolean;
  readonly volumes?: readonly ({ name: string } & Record<string, unknown>)[];
}

export function podSpec(workload: Obj): PodSpec {
  const spec = (workload['spec'] as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
  if (spec === undefined) throw new Error(`${workload.kind} ${workload.metadata?.name} has no pod template`);
  return spec;
}

export function container(spec: PodSpec, name: string): Container {
  const c = spec.containers.find((x) => x.name === name);
  if (c === undefined) throw new Error(`no container ${name}`);
  return c;
}

/**
 * The kubelet's expansion of `$(VAR)` in command and args: a defined variable is replaced, `$$` is a
 * literal `$`, and anything else (an undefined name, `$(` inside shell syntax) is left as written.
 */
export function expandKubeVars(s: string, env: Readonly<Record<string, string>>): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch !== '$' || i + 1 >= s.length) {
      out += ch;
      continue;
    }
    const next = s[i + 1];
    if (next === '$') {
      out += '$';
      i += 1;
    } else if (next === '(') {
      const end = s.indexOf(')', i + 2);
      const name = end < 0 ? undefined : s.slice(i + 2, end);
      if (name !== undefined && Object.hasOwn(env, name)) {
        out += env[name];
        i = end;
      } else out += ch;
    } else out += ch;
  }
  return out;
}

/** The variants with golden renders in testdata/chart/ (values on top of values.yaml). */
export const VARIANTS: Readonly<Record<string, Readonly<Record<string, unknown>>>> = {
  default: {},
  // The later features switched on, and Skein as the cluster's default IngressClass.
  'encryption-default-ingressclass': {
    encryption: { enabled: true, type: 'wireguard' },
    kubeProxyReplacement: true,
    k8sServiceHost: '10.0.0.10',
    k8sServicePort: 6443,
    ingressClass: { default: true },
    logLevel: 'debug',
  },
  // The cluster brings its own Gateway API CRDs; images from a private registry, pinned by digest;
  // nothing privileged (the host mounts bpffs); state-of-the-world xDS; operators on distinct nodes.
  'no-crds-custom-image': {
    gatewayAPI: { installCRDs: false },
    image: {
      registry: 'registry.example.com:5000',
      repository: 'mirror/skein',
      digest: `sha256:${'ab'.repeat(32)}`,
    },
    envoy: { image: { registry: 'registry.example.com:5000', repository: 'mirror/envoy' }, concurrency: 2 },
    imagePullSecrets: ['regcred'],
    agent: { bpf: { autoMount: false }, deltaXds: false, cgroup: { hostRoot: '/sys/fs/cgroup/unified' } },
    operator: { podAntiAffinity: 'hard', replicas: 3, ingressStatusAddress: 'lb.example.com' },
    nameOverride: 'mesh',
  },
};
