import { execFile } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * A benchmark module compiled to plain JavaScript with the project's compiler settings, in a temporary
 * directory laid out like the repository (src/ and bench/ side by side, envoy/ and node_modules/ linked
 * back), so that relative paths and package lookups resolve as they do from the repository. A child
 * process run from it has no TypeScript loader in it: its RSS is what Skein's compiled code uses, as
 * `skein up` runs it from dist/ (tsx alone adds about 30 MiB).
 */

const ROOT = path.resolve(import.meta.dirname, '..');

export interface Compiled {
  /** The compiled entry module. */
  readonly entry: string;
  remove(): Promise<void>;
}

export async function compileForChild(entry: string): Promise<Compiled> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-bench-js-'));
  try {
    await writeFile(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: path.join(ROOT, 'tsconfig.json'),
        compilerOptions: { noEmit: false, sourceMap: false, rootDir: ROOT, outDir: dir },
        include: [],
        files: [path.resolve(entry)],
      }),
    );
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
    for (const linked of ['node_modules', 'envoy', 'scripts'])
      await symlink(path.join(ROOT, linked), path.join(dir, linked));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    await new Promise<void>((resolve, reject) => {
      execFile(
        process.execPath,
        [tsc, '-p', path.join(dir, 'tsconfig.json')],
        { timeout: 120_000 },
        (err, out) => {
          if (err) reject(new Error(`compiling ${entry} for a child process failed: ${out || err.message}`));
          else resolve();
        },
      );
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const rel = path.relative(ROOT, path.resolve(entry)).replace(/\.ts$/, '.js');
  return { entry: path.join(dir, rel), remove: () => rm(dir, { recursive: true, force: true }) };
}
