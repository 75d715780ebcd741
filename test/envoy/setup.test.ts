import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FoundEnvoy } from '../../src/envoy/findEnvoy.js';
import { ENVOY_VERSION, envoyCacheDir } from '../../src/envoy/findEnvoy.js';
import { ensureEnvoy, runSetup, SETUP_SCRIPT, tempDir } from '../helpers/envoy.js';

/** The environment without ENVOY_BIN, so the cache path is what gets exercised. */
function envWithout(...names: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const n of names) delete env[n];
  return env;
}

describe('scripts/setup.mjs', () => {
  let envoy: FoundEnvoy;
  let scratch: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    envoy = await ensureEnvoy();
    scratch = await tempDir('skein-setup-');
  });
  afterAll(async () => {
    await scratch.remove();
  });

  it('pins the same Envoy version as findEnvoy', async () => {
    const text = await readFile(path.join(path.dirname(SETUP_SCRIPT), 'setup/envoy.mjs'), 'utf8');
    expect(/^export const ENVOY_VERSION = '([^']+)';/m.exec(text)?.[1]).toBe(ENVOY_VERSION);
  });

  it('is idempotent: a second run installs nothing, says so, and is quick', async () => {
    // With ENVOY_BIN set (a developer's own Envoy), setup never installs; otherwise the cache is used.
    const expected =
      envoy.source === 'ENVOY_BIN'
        ? `skein setup: ENVOY_BIN is set: using Envoy ${envoy.version} at ${envoy.path}`
        : `skein setup: Envoy ${ENVOY_VERSION} already installed at ${path.join(envoyCacheDir(), 'envoy', '_bin', 'envoy').replace(os.homedir(), '~')}`;
    const first = await runSetup(['envoy']);
    expect(first.code).toBe(0);
    const second = await runSetup(['envoy']);
    expect(second.code).toBe(0);
    expect(second.stdout.trim().split('\n')).toEqual([expect.stringContaining(expected)]);
    expect(second.stdout).not.toContain('installing');
    expect(second.stderr).toBe('');
    expect(second.ms).toBeLessThan(5000);
    // No half-finished install directories next to the real one.
    const parent = path.dirname(envoyCacheDir());
    const siblings = existsSync(parent) ? await readdir(parent) : [];
    expect(siblings.filter((n) => n.includes('.partial-'))).toEqual([]);
  });

  it('a full run after `npm test`s own setup prints one line per step and builds nothing', async () => {
    // pretest ran every step already, so each one only checks its cache.
    const r = await runSetup();
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/Envoy .*(already installed|ENVOY_BIN is set)/);
    expect(lines[1]).toMatch(/Kubernetes test binaries already built/);
    expect(lines[2]).toMatch(/eBPF datapath (up to date|skipping)|skipping the eBPF datapath/);
    expect(lines[3]).toMatch(/fortio .* already built/);
    expect(r.stdout).not.toMatch(/installing|building|: built /);
  });

  it('honours XDG_CACHE_HOME when finding an existing install', async () => {
    const cache = path.join(scratch.path, 'xdg');
    const bin = path.join(envoyCacheDir({ XDG_CACHE_HOME: cache }), 'envoy', '_bin');
    await mkdir(bin, { recursive: true });
    await symlink(envoy.path, path.join(bin, 'envoy'));
    const r = await runSetup(['envoy'], { ...envWithout('ENVOY_BIN'), XDG_CACHE_HOME: cache });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `skein setup: Envoy ${ENVOY_VERSION} already installed at ${path.join(bin, 'envoy')}\n`,
    );
  });

  it('uses a working ENVOY_BIN instead of installing', async () => {
    const r = await runSetup(['envoy'], {
      ...process.env,
      ENVOY_BIN: envoy.path,
      XDG_CACHE_HOME: path.join(scratch.path, 'unused'),
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `ENVOY_BIN is set: using Envoy ${ENVOY_VERSION} at ${envoy.path}; not installing Envoy`,
    );
    expect(existsSync(path.join(scratch.path, 'unused'))).toBe(false);
  });

  it('fails clearly, and non-zero, when ENVOY_BIN does not run', async () => {
    const bogus = path.join(scratch.path, 'no-such-envoy');
    const r = await runSetup(['envoy'], { ...process.env, ENVOY_BIN: bogus });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`skein setup: step "envoy" failed: ENVOY_BIN=${bogus} does not run`);
    expect(r.stderr).toContain('unset it to install Envoy');
  });

  it('runs only the steps named, and refuses unknown ones', async () => {
    const r = await runSetup(['envoy'], envWithout('ENVOY_BIN'));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('already installed');
    const bad = await runSetup(['no-such-step']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown step no-such-step; steps are: envoy');
  });
});
