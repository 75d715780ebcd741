import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One real kube-apiserver + etcd per run, started only when Kubernetes tests are selected.
    globalSetup: ['test/harness/globalSetup.ts'],
    // Real Envoy processes and gRPC servers: give them room, and keep files in separate workers.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more parallel Envoys only make the runs flaky.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
