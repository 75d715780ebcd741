import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findEnvoy } from '../src/envoy/findEnvoy.js';

/**
 * `npm run bench [-- <name> [--quick]]`: runs one benchmark (or all), prints its tables and writes
 * bench/results/<name>.json. Benchmarks are not tests and never gate CI; a smoke run of each is in the
 * test suite (test/bench/) so that this harness does not rot.
 */
export interface BenchResult {
  readonly name: string;
  readonly machine: unknown;
  readonly [section: string]: unknown;
}

export interface Bench {
  readonly name: string;
  readonly description: string;
  run(opts: { quick: boolean }): Promise<BenchResult>;
}

/** Every benchmark by name, loaded on demand (test/bench/smoke.test.ts runs each in quick mode). */
export const benches: Record<string, () => Promise<Bench>> = {
  'gateway-translate': async () => (await import('./gateway-translate.js')).bench,
  'xds-translate-push': async () => (await import('./xds-translate-push.js')).bench,
  'service-lb': async () => (await import('./service-lb.js')).bench,
  'xds-fanout': async () => (await import('./xds-fanout.js')).bench,
  'kube-route-edit': async () => (await import('./kube-route-edit.js')).bench,
  'policy-datapath': async () => (await import('./policy-datapath.js')).bench,
  'request-latency': async () => (await import('./request-latency.js')).bench,
};

async function main(argv: string[]): Promise<number> {
  const quick = argv.includes('--quick');
  const names = argv.filter((a) => !a.startsWith('--'));
  const selected = names.length === 0 ? Object.keys(benches) : names;
  for (const name of selected) {
    const load = benches[name];
    if (load === undefined) {
      process.stderr.write(`bench: unknown benchmark "${name}"; known: ${Object.keys(benches).join(', ')}\n`);
      return 2;
    }
    const bench = await load();
    process.stdout.write(`== ${bench.name}: ${bench.description}${quick ? ' (quick)' : ''}\n`);
    const loadBefore = os.loadavg();
    const started = Date.now();
    const ran = await bench.run({ quick });
    // Every result names the Envoy release of this machine (the ones that run no Envoy too) and how busy
    // the machine was: the 1/5/15-minute load averages before and after the run.
    const envoy = await findEnvoy().then(
      (e) => e.version,
      () => 'not installed',
    );
    const result = {
      ...ran,
      machine: {
        envoy,
        ...(ran.machine as Record<string, unknown>),
        loadAverageBefore: loadBefore.map((l) => Number(l.toFixed(2))),
        loadAverageAfter: os.loadavg().map((l) => Number(l.toFixed(2))),
        runSeconds: Math.round((Date.now() - started) / 1000),
      },
    };
    const dir = path.join(import.meta.dirname, 'results');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${name}${quick ? '.quick' : ''}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    process.stdout.write(`\nwrote ${path.relative(process.cwd(), file)}\n`);
  }
  return 0;
}

if (process.argv[1] !== undefined && import.meta.filename === path.resolve(process.argv[1])) {
  process.exitCode = await main(process.argv.slice(2));
}
