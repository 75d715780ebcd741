#!/usr/bin/env node
// Fills charts/skein/charts/gateway-api-crds/crds/ with the Gateway API CRDs (standard channel), copied
// from what `node scripts/setup.mjs kube` took out of the sigs.k8s.io/gateway-api Go module. The files
// are generated, not committed (.gitignore): run this before `helm install` or `helm package` from a
// checkout; the chart tests run it first.
//
//   node scripts/chart-crds.mjs
//
// Only CustomResourceDefinitions are copied: the bundle's ValidatingAdmissionPolicy (safe-upgrades) is
// cluster policy, not a type, and Helm's crds/ is for types. Idempotent and safe to run concurrently:
// unchanged files are left alone, changed ones are written beside their name and renamed into place.
// Plain Node ESM, node:* only.

import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GATEWAY_API_VERSION, gatewayApiCrdDir } from './setup/kube.mjs';

export const SUBCHART_DIR = fileURLToPath(
  new URL('../charts/skein/charts/gateway-api-crds', import.meta.url),
);
export const CRDS_DIR = path.join(SUBCHART_DIR, 'crds');
export const CHANNEL = 'standard';

class ChartCrdsError extends Error {}

/** The subchart's `version:` must be the Gateway API version setup pins, or the chart would lie. */
async function checkSubchartVersion() {
  const file = path.join(SUBCHART_DIR, 'Chart.yaml');
  const text = await readFile(file, 'utf8');
  const version = /^version:\s*"?([^"\s]+)"?\s*$/m.exec(text)?.[1];
  const appVersion = /^appVersion:\s*"?([^"\s]+)"?\s*$/m.exec(text)?.[1];
  if (version !== GATEWAY_API_VERSION || appVersion !== `v${GATEWAY_API_VERSION}`) {
    throw new ChartCrdsError(
      `${path.relative(process.cwd(), file)} says version ${version ?? '(none)'} / appVersion ${appVersion ?? '(none)'}, but scripts/setup/kube.mjs pins Gateway API v${GATEWAY_API_VERSION}: update the subchart's version and appVersion (and the dependency version in charts/skein/Chart.yaml)`,
    );
  }
}

/** The CRD files of the channel, by file name; throws if setup has not copied them out yet. */
async function sourceCrds() {
  const dir = path.join(gatewayApiCrdDir(process.env), CHANNEL);
  let names;
  try {
    names = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
  } catch (err) {
    throw new ChartCrdsError(
      `cannot read the Gateway API CRDs in ${dir} (${err.code ?? err.message}): run \`node scripts/setup.mjs kube\` first`,
    );
  }
  const crds = new Map();
  const skipped = [];
  for (const name of names) {
    const text = await readFile(path.join(dir, name), 'utf8');
    const kinds = [...text.matchAll(/^kind:\s*(\S+)\s*$/gm)].map((m) => m[1]);
    if (kinds.length === 1 && kinds[0] === 'CustomResourceDefinition') {
      if (!text.includes(`gateway.networking.k8s.io/bundle-version: v${GATEWAY_API_VERSION}`)) {
        throw new ChartCrdsError(`${path.join(dir, name)} is not from Gateway API v${GATEWAY_API_VERSION}`);
      }
      crds.set(name, text);
    } else skipped.push(`${name} (${kinds.join(', ') || 'no kind'})`);
  }
  if (crds.size === 0) throw new ChartCrdsError(`no CustomResourceDefinitions in ${dir}`);
  return { dir, crds, skipped };
}

export async function fillChartCrds() {
  await checkSubchartVersion();
  const { dir, crds, skipped } = await sourceCrds();
  await mkdir(CRDS_DIR, { recursive: true });
  let written = 0;
  for (const [name, text] of crds) {
    const dest = path.join(CRDS_DIR, name);
    const current = await readFile(dest, 'utf8').catch(() => undefined);
    if (current === text) continue;
    // Helm's .helmignore drops `.*.partial-*`, should a run die between write and rename.
    const tmp = path.join(CRDS_DIR, `.${name}.partial-${process.pid}`);
    await writeFile(tmp, text);
    await rename(tmp, dest);
    written += 1;
  }
  let removed = 0;
  for (const name of await readdir(CRDS_DIR)) {
    if (!crds.has(name) && !name.startsWith('.')) {
      await rm(path.join(CRDS_DIR, name), { force: true });
      removed += 1;
    }
  }
  return { from: dir, to: CRDS_DIR, count: crds.size, written, removed, skipped };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const r = await fillChartCrds();
    const rel = path.relative(process.cwd(), r.to) || '.';
    process.stdout.write(
      `skein chart-crds: ${r.count} Gateway API v${GATEWAY_API_VERSION} CRDs (${CHANNEL}) in ${rel} (${r.written} written, ${r.removed} removed; not copied: ${r.skipped.join(', ') || 'none'})\n`,
    );
  } catch (err) {
    process.stderr.write(
      `skein chart-crds: ${err instanceof ChartCrdsError ? err.message : (err?.stack ?? err)}\n`,
    );
    process.exitCode = 1;
  }
}
