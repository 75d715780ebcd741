#!/usr/bin/env node
// Installs what Skein needs at run and test time that npm does not provide, into caches outside the
// repository. Each step is idempotent and fast when its work is already done, so `npm test` and
// `npm start` can run this every time.
//
//   node scripts/setup.mjs            run every step
//   node scripts/setup.mjs envoy      run only the named steps
//
// Plain Node ESM with only node:* imports: it runs before `npm run build` and must not depend on it.

import { benchStep } from './setup/bench.mjs';
import { bpfStep } from './setup/bpf.mjs';
import { PREFIX, SetupError } from './setup/common.mjs';
import { envoyStep } from './setup/envoy.mjs';
import { kubeStep } from './setup/kube.mjs';

/**
 * The steps, in order; each lives in scripts/setup/<name>.mjs. A step is `{ name, describe, run(ctx) }`;
 * `run` prints what it does, returns when done, and throws a SetupError with a message for the user when
 * it cannot finish.
 */
const steps = [envoyStep, kubeStep, bpfStep, benchStep];

async function main(argv) {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write('usage: node scripts/setup.mjs [step ...]\n\nsteps:\n');
    for (const s of steps) process.stdout.write(`  ${s.name.padEnd(12)} ${s.describe}\n`);
    return 0;
  }
  const unknown = argv.filter((a) => !steps.some((s) => s.name === a));
  if (unknown.length > 0) {
    process.stderr.write(
      `${PREFIX} unknown step ${unknown.join(', ')}; steps are: ${steps.map((s) => s.name).join(', ')}\n`,
    );
    return 2;
  }
  const selected = argv.length === 0 ? steps : steps.filter((s) => argv.includes(s.name));
  const ctx = { env: process.env };
  for (const step of selected) {
    try {
      await step.run(ctx);
    } catch (err) {
      const detail = err instanceof SetupError ? err.message : (err?.stack ?? String(err));
      process.stderr.write(`${PREFIX} step "${step.name}" failed: ${detail}\n`);
      return 1;
    }
  }
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
