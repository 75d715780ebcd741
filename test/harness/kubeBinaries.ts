// Where `node scripts/setup.mjs kube` puts the Kubernetes test binaries and the Gateway API CRDs.
// The versions mirror scripts/setup/kube.mjs (the source of truth); test/kube/setup.test.ts checks that
// the two agree.

import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const KUBERNETES_VERSION = '1.37.2';
export const ETCD_VERSION = '3.7.3';
export const HELM_VERSION = '3.22.0';
export const GATEWAY_API_VERSION = '1.6.3';

export const SETUP_SCRIPT = fileURLToPath(new URL('../../scripts/setup.mjs', import.meta.url));

type Env = Readonly<Record<string, string | undefined>>;

/** `$XDG_CACHE_HOME/skein` when that is absolute, else `~/.cache/skein` (as scripts/setup/common.mjs). */
export function skeinCacheRoot(env: Env = process.env): string {
  const xdg = env['XDG_CACHE_HOME'];
  const home = env['HOME'] || os.homedir();
  return path.join(xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache'), 'skein');
}

export interface KubeBinaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly helm: string;
  /** Holds `standard/` and `experimental/`, one YAML file per CRD (plus the channel's admission policy). */
  readonly gatewayApiCrds: string;
}

export function kubeBinaries(env: Env = process.env): KubeBinaries {
  const bin = path.join(skeinCacheRoot(env), 'bin');
  return {
    kubeApiserver: path.join(bin, `kube-apiserver-v${KUBERNETES_VERSION}`),
    etcd: path.join(bin, `etcd-v${ETCD_VERSION}`),
    helm: path.join(bin, `helm-v${HELM_VERSION}`),
    gatewayApiCrds: path.join(skeinCacheRoot(env), 'gateway-api', `v${GATEWAY_API_VERSION}`),
  };
}

async function present(b: KubeBinaries): Promise<boolean> {
  const checks = [b.kubeApiserver, b.etcd, b.helm].map((f) => access(f, constants.X_OK));
  checks.push(access(path.join(b.gatewayApiCrds, 'experimental'), constants.R_OK));
  return (await Promise.allSettled(checks)).every((r) => r.status === 'fulfilled');
}

let ensured: Promise<KubeBinaries> | undefined;

/**
 * The binaries, after running `node scripts/setup.mjs kube` if any is missing (`npm test` runs setup
 * first, so that is for `npx vitest run test/kube` on a fresh machine). A first build takes minutes
 * (see README.md); its output goes to this process's stderr so the wait is explained.
 */
export function ensureKubeBinaries(env: Env = process.env): Promise<KubeBinaries> {
  ensured ??= (async () => {
    const b = kubeBinaries(env);
    if (await present(b)) return b;
    await new Promise<void>((resolve, reject) => {
      const opts = { timeout: 60 * 60_000, env: { ...process.env, ...env } };
      const child = execFile(process.execPath, [SETUP_SCRIPT, 'kube'], opts, (err) =>
        err === null ? resolve() : reject(new Error(`node scripts/setup.mjs kube failed: ${err.message}`)),
      );
      child.stdout?.pipe(process.stderr);
      child.stderr?.pipe(process.stderr);
    });
    if (!(await present(b)))
      throw new Error(`node scripts/setup.mjs kube ran, but ${b.kubeApiserver} is missing`);
    return b;
  })();
  ensured.catch(() => {
    ensured = undefined;
  });
  return ensured;
}
