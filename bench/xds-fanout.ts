import { type ChildProcess, spawn } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ControlPlane } from '../src/controlPlane.js';
import { silentLogger } from '../src/log.js';
import { type XdsAckEvent, XdsChannelName, type XdsSendEvent } from '../src/xds/events.js';
import { TypeUrl } from '../src/xds/proto.js';
import { createXdsServer, type XdsServer } from '../src/xds/server.js';
import { machineInfo, printTable, rssMiB } from './machine.js';
import type { Bench, BenchResult } from './run.js';
import { objectSet } from './xds-translate-push.js';

/**
 * Fan-out: one route changed among 1,000, pushed to K ADS clients at once, until every client has ACKed
 * the new route configuration. The clients are Envoy-like ADS streams (test/helpers/adsClient.ts), one
 * gRPC channel each, in a separate process; the server measures from `apply()` to the last ACK.
 *
 * Side by side in the same run, the baseline is the same change pushed to one client; the ratio says what
 * each extra client costs. Both state-of-the-world and delta ADS are measured.
 */

const ROUTES = 1000;
const SAMPLES = 5;

interface Clients {
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

function startClients(address: string, count: number, mode: 'sotw' | 'delta'): Promise<Clients> {
  const script = path.join(import.meta.dirname, 'fanoutClients.ts');
  const child = spawn(process.execPath, ['--import', 'tsx', script, address, String(count), mode], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) resolve({ child, stop });
    });
    child.once('exit', (code) => reject(new Error(`fan-out clients exited early (code ${code})`)));
  });
}

/**
 * Resolves when `count` distinct streams have ACKed a route configuration after this call, counted from the
 * server's `skein:xds:ack` diagnostics channel (polling status() for 500 streams would load the very event
 * loop being measured). Also returns the size of the route configuration response sent.
 */
function untilAllAcked(count: number, timeoutMs: number): Promise<{ bytes: number }> {
  return new Promise((resolve, reject) => {
    const acked = new Set<number>();
    let bytes = 0;
    const onSend = (m: unknown): void => {
      const e = m as XdsSendEvent;
      if (e.typeUrl === TypeUrl.RouteConfiguration) bytes = e.bytes;
    };
    const onAck = (m: unknown): void => {
      const e = m as XdsAckEvent;
      if (e.typeUrl !== TypeUrl.RouteConfiguration) return;
      acked.add(e.streamId);
      if (acked.size === count) finish();
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`only ${acked.size} of ${count} clients ACKed within ${timeoutMs} ms`));
    }, timeoutMs);
    function finish(): void {
      clearTimeout(timer);
      diagnosticsChannel.unsubscribe(XdsChannelName.Ack, onAck);
      diagnosticsChannel.unsubscribe(XdsChannelName.Send, onSend);
      resolve({ bytes });
    }
    diagnosticsChannel.subscribe(XdsChannelName.Send, onSend);
    diagnosticsChannel.subscribe(XdsChannelName.Ack, onAck);
  });
}

/** Resolves when the group's streams have ACKed everything they were sent. */
async function untilSettled(xds: XdsServer, count: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const streams = xds.status().streams;
    if (
      streams.length === count &&
      streams.every((s) => s.types.every((t) => t.pendingNonce === null && t.sentVersion === t.ackedVersion))
    )
      return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`clients did not settle within ${timeoutMs} ms`);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

export const bench: Bench = {
  name: 'xds-fanout',
  description: `one route changed among ${ROUTES}, pushed to K ADS clients until all have ACKed`,
  async run({ quick }): Promise<BenchResult> {
    const fleet = quick ? 20 : 500;
    const samples = quick ? 2 : SAMPLES;
    const rows: Record<string, string | number>[] = [];
    for (const mode of ['delta', 'sotw'] as const) {
      const byCount = new Map<number, number>();
      for (const count of [1, fleet]) {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-fanout-'));
        const cp = new ControlPlane({ logger: silentLogger });
        const xds = createXdsServer({ cache: cp.cache, logger: silentLogger });
        let clients: Clients | undefined;
        try {
          const address = await xds.listen(`unix://${path.join(dir, 'xds.sock')}`);
          cp.apply(objectSet(ROUTES));
          clients = await startClients(address, count, mode);
          await untilSettled(xds, count, 60_000);
          const times: number[] = [];
          let rdsBytes = 0;
          for (let i = 0; i < samples; i++) {
            const changed = objectSet(ROUTES, { changed: { index: 500, path: `/changed-${i}` } });
            const acked = untilAllAcked(count, 60_000);
            const t0 = performance.now();
            const report = cp.apply(changed);
            if (!report.published) throw new Error(`not published: ${report.errors.join('; ')}`);
            rdsBytes = (await acked).bytes;
            times.push(performance.now() - t0);
          }
          byCount.set(count, median(times));
          rows.push({
            ADS: mode,
            clients: count,
            'change → all ACKed ms (median)': median(times),
            'min ms': Math.min(...times),
            'max ms': Math.max(...times),
            'RDS response KiB': rdsBytes / 1024,
            'skein RSS MiB': rssMiB(),
          });
        } finally {
          await clients?.stop();
          await xds.close();
          await rm(dir, { recursive: true, force: true });
        }
      }
      const one = byCount.get(1) ?? Number.NaN;
      const many = byCount.get(fleet) ?? Number.NaN;
      rows.push({
        ADS: mode,
        clients: `${fleet} / 1`,
        'change → all ACKed ms (median)': many / one,
        'min ms': '',
        'max ms': '',
        'RDS response KiB': '',
        'skein RSS MiB': '',
      });
    }
    printTable(
      `One change among ${ROUTES} routes to K clients (baseline: 1 client, side by side; last row per mode is the ratio)`,
      rows,
    );
    return { name: 'xds-fanout', machine: machineInfo(), fanout: rows };
  },
};
