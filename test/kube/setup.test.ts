// `node scripts/setup.mjs kube`: pinned versions, idempotence, the binaries it built, and helm against the
// harness API server.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ETCD_VERSION,
  GATEWAY_API_VERSION,
  HELM_VERSION,
  KUBERNETES_VERSION,
  kubeBinaries,
  SETUP_SCRIPT,
  skeinCacheRoot,
} from '../harness/kubeBinaries.js';
import { useKube } from '../harness/kubeContext.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function run(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('scripts/setup/kube.mjs', () => {
  const kube = useKube();

  it('pins the same versions as the test harness', async () => {
    const text = await readFile(path.join(REPO, 'scripts/setup/kube.mjs'), 'utf8');
    const pinned = (name: string) => new RegExp(`^export const ${name} = '([^']+)';`, 'm').exec(text)?.[1];
    expect(pinned('KUBERNETES_VERSION')).toBe(KUBERNETES_VERSION);
    expect(pinned('ETCD_VERSION')).toBe(ETCD_VERSION);
    expect(pinned('HELM_VERSION')).toBe(HELM_VERSION);
    expect(pinned('GATEWAY_API_VERSION')).toBe(GATEWAY_API_VERSION);
  });

  it('builds from go.mod files that require those versions, staging modules replaced by the matching release', async () => {
    const goMod = (dir: string) => readFile(path.join(REPO, 'build/kube', dir, 'go.mod'), 'utf8');
    expect(await goMod('apiserver')).toMatch(
      new RegExp(`^\\s*k8s\\.io/kubernetes v${KUBERNETES_VERSION}\\b`, 'm'),
    );
    expect(await goMod('etcd')).toMatch(
      new RegExp(`^\\s*go\\.etcd\\.io/etcd/server/v3 v${ETCD_VERSION}\\b`, 'm'),
    );
    expect(await goMod('helm')).toMatch(new RegExp(`^\\s*helm\\.sh/helm/v3 v${HELM_VERSION}\\b`, 'm'));
    expect(await goMod('gateway-api')).toMatch(
      new RegExp(`sigs\\.k8s\\.io/gateway-api v${GATEWAY_API_VERSION}$`, 'm'),
    );
    const replaces = [...(await goMod('apiserver')).matchAll(/^\s*(k8s\.io\/\S+) => (\S+) (\S+)$/gm)];
    const [, minor, patch] = KUBERNETES_VERSION.split('.');
    expect(replaces.length).toBeGreaterThan(20);
    for (const [, from, to, version] of replaces) {
      expect(to).toBe(from);
      expect(version).toBe(`v0.${minor}.${patch}`);
    }
    expect(replaces.map((m) => m[1])).toContain('k8s.io/apiserver');
  });

  it('is idempotent: a second run builds nothing, says so in one line, and is quick', async () => {
    const r = await run(process.execPath, [SETUP_SCRIPT, 'kube']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      `skein setup: Kubernetes test binaries already built in ${path.join(skeinCacheRoot(), 'bin').replace(os.homedir(), '~')}: kube-apiserver v${KUBERNETES_VERSION}, etcd v${ETCD_VERSION}, helm v${HELM_VERSION}; Gateway API v${GATEWAY_API_VERSION} CRDs`,
    ]);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('built binaries that report the pinned versions', async () => {
    const bin = kubeBinaries();
    expect((await run(bin.kubeApiserver, ['--version'])).stdout.trim()).toBe(
      `Kubernetes v${KUBERNETES_VERSION}`,
    );
    expect((await run(bin.etcd, ['--version'])).stdout).toContain(`etcd Version: ${ETCD_VERSION}\n`);
  });

  it('built a helm that talks to the harness API server', async () => {
    const bin = kubeBinaries();
    // helm keeps its config, cache and data under these; a temp dir keeps the user's own untouched.
    const home = await mkdtemp(path.join(os.tmpdir(), 'skein-helm-'));
    try {
      const env = {
        ...process.env,
        HELM_CONFIG_HOME: path.join(home, 'config'),
        HELM_CACHE_HOME: path.join(home, 'cache'),
        HELM_DATA_HOME: path.join(home, 'data'),
      };
      const version = await run(bin.helm, ['version', '--short'], env);
      expect(version.stdout.trim()).toMatch(new RegExp(`^v${HELM_VERSION.replaceAll('.', '\\.')}\\b`));
      const list = await run(
        bin.helm,
        ['list', '--all-namespaces', '-o', 'json', '--kubeconfig', kube().kubeconfigPath],
        env,
      );
      expect(list.stderr).toBe('');
      expect(list.code).toBe(0);
      expect(JSON.parse(list.stdout)).toEqual([]);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
