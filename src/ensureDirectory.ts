import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Makes `dir` (and its missing parents) one level at a time, or says why it cannot. Not
 * `mkdir({ recursive: true })`: under /proc that loops for ever instead of failing.
 */
export async function ensureDirectory(dir: string): Promise<string | undefined> {
  const missing: string[] = [];
  let d = path.resolve(dir);
  for (;;) {
    const st = await stat(d).catch((e: NodeJS.ErrnoException) => e);
    if (!(st instanceof Error)) {
      if (!st.isDirectory()) return `${d} is not a directory`;
      break;
    }
    // ENOTDIR: a file further up is in the way; the walk up finds it and says so.
    if (st.code !== 'ENOENT' && st.code !== 'ENOTDIR') return `${d}: ${st.message}`;
    missing.push(d);
    const parent = path.dirname(d);
    if (parent === d) break;
    d = parent;
  }
  for (const m of missing.reverse()) {
    const err = await mkdir(m).then(
      () => undefined,
      (e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : e),
    );
    if (err !== undefined) return `cannot create ${m}: ${err.code ?? err.message}`;
  }
  return undefined;
}
