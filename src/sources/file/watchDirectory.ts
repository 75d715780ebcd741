import { type FSWatcher, watch } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../log.js';
import { FileCache } from './FileCache.js';
import { isIgnoredPath, isNotFound, isYamlPath, listYamlFiles } from './listYamlFiles.js';
import { assertDirectory, type LoadResult, refreshFile } from './loadDirectory.js';

export interface WatchOptions {
  readonly logger: Logger;
  /** Called with the first full result, then after every batch of changes that changed something. */
  readonly onChange: (result: LoadResult) => void | Promise<void>;
  /** Quiet time after the last event before re-reading (default 50 ms). */
  readonly debounceMs?: number;
}

export interface DirectoryWatcher {
  close(): Promise<void>;
}

/** However busy the directory, a batch is flushed this long after its first event at the latest. */
const MAX_DELAY_FACTOR = 5;
/** Directories watched at most (one inotify watch each). */
const MAX_WATCHED_DIRS = 1000;

/**
 * Watches a config directory and delivers a new LoadResult whenever its YAML changes: the first result
 * before this function resolves, then one per batch of file events (debounced), re-reading only the
 * files the events name. Unchanged files are not parsed again, so their objects keep their identity.
 *
 * Each directory gets its own (non-recursive) fs.watch. Node's recursive mode on Linux watches files
 * individually and misses the deletion of a file that an editor earlier replaced by rename; a watch on
 * the directory sees every create, rename and delete of its entries.
 *
 * Events for dot-entries are ignored (editor swap files), except `..`-prefixed names at any level: those
 * are the `..data` symlink swaps of a Kubernetes ConfigMap mount, after which every file is re-read.
 */
export async function watchDirectory(dir: string, options: WatchOptions): Promise<DirectoryWatcher> {
  const { logger } = options;
  const debounceMs = options.debounceMs ?? 50;
  if (!Number.isFinite(debounceMs) || debounceMs < 0) {
    throw new TypeError(
      `Cannot watch ${dir} with debounceMs ${debounceMs}: current value is not a non-negative number`,
    );
  }
  await assertDirectory(dir);

  const cache = new FileCache();
  const watchers = new Map<string, FSWatcher>();
  const pending = new Set<string>();
  let fullRescan = false;
  let timer: NodeJS.Timeout | undefined;
  let firstEventAt: number | undefined;
  let closed = false;
  let flushing: Promise<void> = Promise.resolve();

  const onEvent = (dirRel: string, filename: string | Buffer | null): void => {
    if (closed) return;
    if (filename === null) {
      fullRescan = true; // the platform did not say what changed
    } else {
      const name = filename.toString();
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      if (name.startsWith('..')) fullRescan = true;
      else if (!isIgnoredPath(rel)) pending.add(rel);
      else return;
    }
    schedule();
  };

  const schedule = (): void => {
    const now = Date.now();
    firstEventAt ??= now;
    if (timer !== undefined) clearTimeout(timer);
    const wait = Math.max(0, Math.min(debounceMs, firstEventAt + debounceMs * MAX_DELAY_FACTOR - now));
    timer = setTimeout(() => {
      timer = undefined;
      firstEventAt = undefined;
      flushing = flushing.then(flush, flush);
    }, wait);
  };

  const watchDir = (rel: string): void => {
    if (watchers.has(rel) || closed) return;
    if (watchers.size >= MAX_WATCHED_DIRS) {
      logger.warn(`not watching ${path.join(dir, rel)}: already watching ${MAX_WATCHED_DIRS} directories`);
      return;
    }
    try {
      const w = watch(path.join(dir, rel), { persistent: false }, (_event, filename) =>
        onEvent(rel, filename),
      );
      w.on('error', (err) => {
        // A watched directory that disappears errors on some platforms; its parent's watch reports it.
        logger.debug({ err }, `watch on ${path.join(dir, rel)} ended`);
        unwatchUnder(rel);
        if (rel === '') logger.error({ err }, `stopped watching ${dir}; restart to pick up changes`);
      });
      watchers.set(rel, w);
    } catch (err) {
      if (!isNotFound(err)) logger.warn({ err }, `cannot watch ${path.join(dir, rel)}`);
    }
  };

  const unwatchUnder = (rel: string): void => {
    for (const [d, w] of watchers) {
      if (rel === '' || d === rel || d.startsWith(`${rel}/`)) {
        w.close();
        watchers.delete(d);
      }
    }
  };

  /** Re-reads a subtree (or everything, for rel ''): new files, changed files, files gone. */
  const rescan = async (rel: string, parsed: string[]): Promise<boolean> => {
    // Watch before listing, so that a file created meanwhile is either listed or reported.
    watchDir(rel);
    const { files, dirs } = await listYamlFiles(dir, rel);
    for (const d of dirs) watchDir(d);
    let changed = false;
    const present = new Set(files);
    for (const f of cache.paths()) {
      if ((rel === '' || f.startsWith(`${rel}/`)) && !present.has(f)) changed = cache.remove(f) || changed;
    }
    for (const f of files) changed = (await refreshOne(f, parsed)) || changed;
    return changed;
  };

  const refreshOne = async (file: string, parsed: string[]): Promise<boolean> => {
    const update = await refreshFile(cache, dir, file, logger);
    if (update.parsed !== undefined) parsed.push(file);
    return update.changed;
  };

  /** One path an event named: a YAML file, a directory, or something gone. */
  const refreshPath = async (rel: string, parsed: string[]): Promise<boolean> => {
    let isDir = false;
    try {
      isDir = (await stat(path.join(dir, rel))).isDirectory();
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    if (isDir) {
      // The directory may be a new one under an old name (deleted and recreated): watch it afresh.
      unwatchUnder(rel);
      return rescan(rel, parsed);
    }
    // Not a directory (any more): drop watches and files that were under it, then read it if YAML.
    unwatchUnder(rel);
    let changed = false;
    for (const f of cache.paths()) if (f.startsWith(`${rel}/`)) changed = cache.remove(f) || changed;
    if (isYamlPath(rel)) changed = (await refreshOne(rel, parsed)) || changed;
    return changed;
  };

  const deliver = async (result: LoadResult): Promise<void> => {
    try {
      await options.onChange(result);
    } catch (err) {
      logger.error({ err }, `handling a change in ${dir} failed`);
    }
  };

  const flush = async (): Promise<void> => {
    if (closed) return;
    const paths = [...pending].sort();
    const everything = fullRescan;
    pending.clear();
    fullRescan = false;
    const parsed: string[] = [];
    let changed = false;
    try {
      if (everything) {
        changed = await rescan('', parsed);
      } else {
        for (const p of paths) changed = (await refreshPath(p, parsed)) || changed;
      }
    } catch (err) {
      logger.error({ err }, `re-reading ${dir} failed; the last good config stays`);
      return;
    }
    if (changed && !closed) await deliver({ ...cache.snapshot(), parsedFiles: parsed });
  };

  // Watch before the first read, so a change made during it is not lost (it triggers a re-read).
  watchDir('');
  const parsed: string[] = [];
  await rescan('', parsed);
  await deliver({ ...cache.snapshot(), parsedFiles: parsed });

  return {
    close: async () => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      unwatchUnder('');
      await flushing;
    },
  };
}
