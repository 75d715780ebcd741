/**
 * fortio (fortio.org, built by `node scripts/setup.mjs bench`) as the load generator and the server of
 * bench/request-latency.ts. The load runs at a constant rate (-qps, -uniform staggers the connections),
 * and every request's latency is read back from fortio's access log (microsecond resolution) rather
 * than from its histogram, whose buckets above 100 units are 20-100% wide: too coarse to tell 2% apart.
 */

import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
// @ts-expect-error: a plain .mjs module of the setup scripts, without types.
import { FORTIO_VERSION, fortioPath } from '../../scripts/setup/bench.mjs';
import type { Proc, World } from './world.js';

export const HTTP_PORT = 8080;
export const GRPC_PORT = 8079;

export type Protocol = 'http' | 'grpc';

/** `taskset -c CPU` (all of the process's threads on that CPU), or nothing. */
export const pin = (cpu: number | undefined): string[] =>
  cpu === undefined ? [] : ['taskset', '-c', String(cpu)];

export function findFortio(): { path: string; version: string } {
  const bin = (fortioPath as (env: NodeJS.ProcessEnv) => string)(process.env);
  if (!existsSync(bin))
    throw new Error(`fortio is not built at ${bin}: run \`node scripts/setup.mjs bench\` (needs Go)`);
  return { path: bin, version: FORTIO_VERSION as string };
}

/** A fortio server (HTTP echo on 8080, gRPC ping on 8079, nothing else) in a pod; resolves once both answer. */
export async function startFortioServer(
  w: World,
  fortio: string,
  netns: string,
  cpu?: number,
): Promise<Proc> {
  const proc = w.spawn(
    netns,
    [
      ...pin(cpu),
      fortio,
      'server',
      '-http-port',
      String(HTTP_PORT),
      '-grpc-port',
      String(GRPC_PORT),
      '-redirect-port',
      'disabled',
      '-tcp-port',
      'disabled',
      '-udp-port',
      'disabled',
      '-ui-path',
      '',
      '-loglevel',
      'error',
    ],
    { what: 'fortio server' },
  );
  for (let i = 0; i < 100; i++) {
    if (proc.child.exitCode !== null) throw new Error(`fortio server exited: ${proc.stderr()}`);
    const ok = await w
      .exec(
        netns,
        [fortio, 'curl', '-loglevel', 'error', `http://127.0.0.1:${HTTP_PORT}/echo`],
        undefined,
        5000,
      )
      .then(
        () => true,
        () => false,
      );
    if (ok) return proc;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`fortio server did not answer within 5 s: ${proc.stderr()}`);
}

export interface LoadOptions {
  readonly protocol: Protocol;
  /** host:port. */
  readonly target: string;
  readonly qps: number;
  readonly connections: number;
  readonly durationS: number;
  /** Runs fortio inside this cgroup (v2 directory) too. */
  readonly cgroup?: string;
  /** Pins fortio to this CPU. */
  readonly cpu?: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  /** fortio's ActualQPS; whether it kept the rate: within 2% of it, and fortio did not warn it fell behind. */
  readonly actualQps: number;
  readonly keptRate: boolean;
  /** fortio's warning when more than 5% of its sleeps were late (it fell behind the schedule). */
  readonly fellBehind: string | undefined;
  /** Sockets (HTTP) or connections it opened. */
  readonly connections: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
  readonly durationS: number;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  // Nearest rank: the smallest value with at least p% of the values at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? Number.NaN;
}

interface FortioJson {
  ActualQPS: number;
  ActualDuration: number;
  DurationHistogram: { Count: number };
  ErrorsDurationHistogram?: { Count: number };
  RetCodes?: Record<string, number>;
  SocketCount?: number;
}

/** One constant-rate run of `fortio load` in a pod; every request's latency from the access log. */
export async function load(
  w: World,
  fortio: string,
  netns: string,
  o: LoadOptions,
  tag: string,
): Promise<LoadResult> {
  const json = path.join(w.dir, `${tag}.json`);
  const accessLog = path.join(w.dir, `${tag}.access.jsonl`);
  await rm(accessLog, { force: true });
  const argv = [
    ...pin(o.cpu),
    fortio,
    'load',
    ...(o.protocol === 'grpc' ? ['-grpc', '-ping'] : []),
    '-qps',
    String(o.qps),
    '-uniform',
    '-c',
    String(o.connections),
    '-t',
    `${o.durationS}s`,
    '-json',
    json,
    '-access-log-file',
    accessLog,
    '-access-log-format',
    'json',
    '-loglevel',
    'warning',
    o.protocol === 'grpc' ? o.target : `http://${o.target}/echo`,
  ];
  const proc = w.spawn(netns, argv, {
    ...(o.cgroup === undefined ? {} : { cgroup: o.cgroup }),
    what: 'fortio load',
  });
  let stdout = '';
  proc.child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  const timer = setTimeout(() => void proc.stop(), (o.durationS + 30) * 1000);
  const code = await proc.exited;
  clearTimeout(timer);
  if (code !== 0)
    throw new Error(`fortio load ${o.protocol} ${o.target} exited with ${code}: ${proc.stderr()}`);
  const result = JSON.parse(await readFile(json, 'utf8')) as FortioJson;
  const latencies: number[] = [];
  let failed = 0;
  for (const line of (await readFile(accessLog, 'utf8')).split('\n')) {
    if (line === '') continue;
    const entry = JSON.parse(line) as { latency: number; ok: boolean };
    if (!entry.ok) failed++;
    latencies.push(entry.latency * 1e6);
  }
  await rm(accessLog, { force: true });
  const sorted = Float64Array.from(latencies).sort();
  const errors = Math.max(failed, result.ErrorsDurationHistogram?.Count ?? 0);
  const fellBehind = /WARNING [\d.]+% of sleep were falling behind/.exec(stdout)?.[0];
  const actualQps = result.ActualQPS;
  return {
    requests: result.DurationHistogram.Count,
    errors,
    actualQps,
    keptRate: actualQps >= o.qps * 0.98 && fellBehind === undefined,
    fellBehind,
    connections: result.SocketCount ?? o.connections,
    p50Us: percentile(sorted, 50),
    p90Us: percentile(sorted, 90),
    p99Us: percentile(sorted, 99),
    maxUs: sorted[sorted.length - 1] ?? Number.NaN,
    meanUs: latencies.reduce((a, b) => a + b, 0) / Math.max(1, latencies.length),
    durationS: result.ActualDuration / 1e9,
  };
}
