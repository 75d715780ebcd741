/**
 * Envoys of bench/request-latency.ts, each in a network namespace with its admin on a Unix socket (the
 * bench process is in none of those namespaces), and what the bench reads of them: readiness, counters.
 */

import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { parseStats } from '../../src/envoy/admin.js';
import type { Proc, World } from './world.js';

/** One worker thread for every Envoy of the bench, so that the one-Envoy and two-Envoy paths compare. */
export const ENVOY_CONCURRENCY = 1;

export interface BenchEnvoy {
  readonly name: string;
  readonly proc: Proc;
  readonly adminSocket: string;
  admin(p: string, method?: string): Promise<string>;
  /** Counters and gauges (a regex filter on the name). */
  stats(filter?: string): Promise<Map<string, number>>;
}

export function adminRequest(socketPath: string, p: string, method = 'GET'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: p, method, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`admin ${p} timed out`)));
    req.end();
  });
}

/** Starts Envoy with `config` (a bootstrap object or, with `configPath`, a file already written) in `netns`. */
export async function startEnvoy(
  w: World,
  o: {
    name: string;
    netns: string;
    envoyPath: string;
    bootstrap: unknown;
    adminSocket: string;
    /** Wait until this is true of the admin interface too (e.g. xDS config arrived). */
    ready?: (e: BenchEnvoy) => Promise<boolean>;
  },
): Promise<BenchEnvoy> {
  const file = path.join(w.dir, `${o.name}.bootstrap.json`);
  await writeFile(file, JSON.stringify(o.bootstrap));
  const proc = w.spawn(
    o.netns,
    [
      o.envoyPath,
      '-c',
      file,
      '--concurrency',
      String(ENVOY_CONCURRENCY),
      '--disable-hot-restart',
      '-l',
      'warning',
    ],
    { what: `envoy ${o.name}` },
  );
  const e: BenchEnvoy = {
    name: o.name,
    proc,
    adminSocket: o.adminSocket,
    admin: (p, method) => adminRequest(o.adminSocket, p, method),
    async stats(filter) {
      const q = filter === undefined ? '' : `?filter=${encodeURIComponent(filter)}`;
      return parseStats(await adminRequest(o.adminSocket, `/stats${q}`));
    },
  };
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`envoy ${o.name} exited: ${proc.stderr()}`);
    const state = await e.admin('/ready').catch(() => '');
    if (state.trim() === 'LIVE' && (o.ready === undefined || (await o.ready(e)))) return e;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`envoy ${o.name} was not ready within 20 s: ${proc.stderr()}`);
}
