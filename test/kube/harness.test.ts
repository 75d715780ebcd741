// The harness itself: which runs start the shared API server, and a private cluster's restart and stop.

import { existsSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { needsKube } from '../harness/globalSetup.js';
import { kubeRequest, startKube } from '../harness/kube.js';
import { kubeConfigFor } from '../harness/kubeContext.js';

describe('needsKube', () => {
  it('is true only when a selected file is a Kubernetes test', () => {
    expect(needsKube(['/work/main/test/kube/api.test.ts'])).toBe(true);
    expect(needsKube(['/w/test/gateway/golden.test.ts', '/w/test/sources/kubernetes/informer.test.ts'])).toBe(
      true,
    );
    expect(needsKube(['/w/test/e2e/operator.kube.test.ts'])).toBe(true);
    expect(needsKube(['/w/test/gateway/golden.test.ts', '/w/test/xds/kubelike.test.ts'])).toBe(false);
    expect(needsKube([])).toBe(false);
  });
});

describe('startKube (a private cluster)', () => {
  it('restarts kube-apiserver on the same port with the same etcd, and stop() removes everything', async () => {
    const cluster = await startKube({ gatewayApi: false });
    try {
      const core = kubeConfigFor(cluster).makeApiClient(CoreV1Api);
      await core.createNamespace({ body: { metadata: { name: 'before-restart' } } });

      await cluster.restartApiServer();
      const after = await kubeRequest(cluster, { path: '/readyz', token: cluster.token });
      expect(after.status).toBe(200);
      // Same URL, same data: the object written before the restart is read back from etcd.
      expect((await core.readNamespace({ name: 'before-restart' })).metadata?.name).toBe('before-restart');
    } finally {
      await cluster.stop();
    }
    expect(existsSync(cluster.dir)).toBe(false);
    await expect(kubeRequest(cluster, { path: '/readyz', token: cluster.token })).rejects.toThrow(
      /ECONNREFUSED/,
    );
    await expect(fetch(`${cluster.etcdUrl}/health`)).rejects.toThrow();
  });
});
