// vitest globalSetup: one real Kubernetes API server per `vitest run`, shared by every test file that
// needs one, and started only when such a file is part of the run.
//
// How it knows: vitest (3.x) records the paths of the selected test files before it runs global setups;
// `needsKube` looks for files under a `kube/` or `kubernetes/` directory of test/, or named
// `*.kube.test.ts`. `npx vitest run test/gateway` therefore starts nothing, and `npm test` starts one
// cluster (~15 s) for all Kubernetes test files together. The recorded paths are vitest's state API
// (marked experimental); if it is ever missing the cluster is started anyway, and a test file that finds
// nothing provided (watch mode, or a file outside those folders) starts a private cluster through
// useKube() instead: slower, never wrong.

import type { TestProject } from 'vitest/node';
import { type KubeCluster, startKube } from './kube.js';
// The type of the provided value (ProvidedContext.skeinKube) is declared in kubeContext.ts.

/** True when a selected test file needs the shared API server. */
export function needsKube(paths: readonly string[]): boolean {
  return paths.some((p) => {
    const rel = p.replaceAll('\\', '/');
    return /\/test\/(?:.+\/)?(?:kube|kubernetes)\//.test(rel) || rel.endsWith('.kube.test.ts');
  });
}

function selectedPaths(project: TestProject): readonly string[] | undefined {
  const state = project.vitest.state as { getPaths?: () => string[] } | undefined;
  return typeof state?.getPaths === 'function' ? state.getPaths() : undefined;
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const paths = selectedPaths(project);
  if (paths !== undefined && !needsKube(paths)) return undefined;
  const started = Date.now();
  const cluster: KubeCluster = await startKube();
  process.stderr.write(
    `skein kube harness: kube-apiserver at ${cluster.server} ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  project.provide('skeinKube', {
    kubeconfigPath: cluster.kubeconfigPath,
    server: cluster.server,
    token: cluster.token,
    userToken: cluster.userToken,
    caPem: cluster.caPem,
  });
  return () => cluster.stop();
}
