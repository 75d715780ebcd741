// The shared API server as test files see it: `useKube()` returns the connection that globalSetup
// provided, or starts a private cluster for this file when none was (see globalSetup.ts).

import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, inject } from 'vitest';
import { type KubeCluster, type KubeConnection, startKube } from './kube.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Set by test/harness/globalSetup.ts when the run includes Kubernetes tests. */
    skeinKube?: KubeConnection;
  }
}

/** Bound on starting a private cluster (it may first have to build the binaries, see README.md). */
const PRIVATE_START_TIMEOUT_MS = 20 * 60_000;

/**
 * Registers beforeAll/afterAll hooks and returns a getter for the connection, valid inside tests.
 * Tests share the server with other files: use unique namespaces and names (`uniqueName()`), and never
 * restart or stop it (start a private one with startKube() for that).
 */
export function useKube(): () => KubeConnection {
  let conn: KubeConnection | undefined;
  let own: KubeCluster | undefined;
  beforeAll(async () => {
    conn = inject('skeinKube');
    if (conn === undefined) {
      own = await startKube();
      conn = own;
    }
  }, PRIVATE_START_TIMEOUT_MS);
  afterAll(async () => {
    await own?.stop();
  });
  return () => {
    if (conn === undefined)
      throw new Error('useKube(): the API server is not started yet (use it inside a test)');
    return conn;
  };
}

/** A client-node KubeConfig for the connection, as `token`'s user (the admin by default). */
export function kubeConfigFor(conn: KubeConnection, token: string = conn.token): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'skein-test', server: conn.server, caData: Buffer.from(conn.caPem).toString('base64') },
    ],
    users: [{ name: 'skein-test-user', token }],
    contexts: [{ name: 'skein-test', cluster: 'skein-test', user: 'skein-test-user' }],
    currentContext: 'skein-test',
  });
  return kc;
}

let counter = 0;

/** A DNS-1123 name unique across test files and runs sharing one API server: `<prefix>-<random>-<n>`. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}-${counter}`;
}
