import type { Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** Bounds on what a config directory may hold, so a wrong `--config-dir` (say, `/`) cannot run away. */
export const MAX_DEPTH = 16;
export const MAX_FILES = 10_000;

/** `*.yaml` and `*.yml`, any case. */
export function isYamlPath(file: string): boolean {
  return /\.ya?ml$/i.test(file);
}

/**
 * Whether a path (relative, `/`-separated) is skipped: any segment starting with a dot. That covers
 * editors' swap and backup files (`.route.yaml.swp`), VCS directories, and the `..data` directories of
 * Kubernetes ConfigMap mounts (whose files are reached through the symlinks at the top level).
 */
export function isIgnoredPath(file: string): boolean {
  return file.split('/').some((segment) => segment.startsWith('.'));
}

/**
 * Every YAML file under `root/sub` (recursively, skipping dotfiles and dot-directories), as paths relative
 * to `root` with `/` separators, sorted. Symlinks to files are followed (ConfigMap mounts are built of
 * them); symlinks to directories are not, so a link cycle cannot loop. Also returns the directories seen,
 * for the watcher.
 */
export async function listYamlFiles(root: string, sub = ''): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = async (rel: string, depth: number): Promise<void> => {
    if (depth > MAX_DEPTH || files.length >= MAX_FILES) return;
    dirs.push(rel);
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(root, rel), { withFileTypes: true });
    } catch (e) {
      // Deleted while we walked it: it simply has no files now.
      if (isNotFound(e)) return;
      throw e;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const childRel = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) {
        await walk(childRel, depth + 1);
      } else if (isYamlPath(entry.name)) {
        if (entry.isFile() || (entry.isSymbolicLink() && (await isFile(path.join(root, childRel))))) {
          if (files.length < MAX_FILES) files.push(childRel);
        }
      }
    }
  };
  await walk(sub, 0);
  return { files: files.sort(), dirs: dirs.sort() };
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

export function isNotFound(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
