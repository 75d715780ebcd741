import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../../log.js';
import type { Diagnostic, ObjectSet } from '../objects.js';
import { FileCache, type FileUpdate } from './FileCache.js';
import { isNotFound, listYamlFiles } from './listYamlFiles.js';
import { SourceCode, SourceError } from './sourceCodes.js';

/** Larger files are refused rather than parsed: config is kilobytes, and YAML parsing is not free. */
export const MAX_FILE_BYTES = 8 * 1024 * 1024;

export interface LoadResult {
  readonly objects: ObjectSet;
  readonly diagnostics: Diagnostic[];
  /** Files (relative paths) parsed to produce this result; unchanged files are not parsed again. */
  readonly parsedFiles: readonly string[];
}

export interface LoadOptions {
  readonly logger: Logger;
}

/**
 * Reads every YAML file under `dir` once. Problems in the files become diagnostics; only a missing
 * directory is thrown (SourceError with code SKEIN_SOURCE_NO_DIR).
 */
export async function loadDirectory(dir: string, options: LoadOptions): Promise<LoadResult> {
  await assertDirectory(dir);
  const cache = new FileCache();
  const { files } = await listYamlFiles(dir);
  const parsedFiles: string[] = [];
  for (const file of files) {
    const update = await refreshFile(cache, dir, file, options.logger);
    if (update.parsed !== undefined) parsedFiles.push(file);
  }
  return { ...cache.snapshot(), parsedFiles };
}

export async function assertDirectory(dir: string): Promise<void> {
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
  if (!isDir) {
    throw new SourceError(
      SourceCode.NoDir,
      `Cannot read config from ${dir}: it does not exist or is not a directory`,
    );
  }
}

/**
 * Reads one file into the cache (or removes it if it is gone) and logs the kinds it skipped. The log
 * line for a skipped object is written once per parse, so once per content of the file, and never
 * again on a reload that leaves the file alone.
 */
export async function refreshFile(
  cache: FileCache,
  root: string,
  file: string,
  logger: Logger,
): Promise<FileUpdate> {
  const full = path.join(root, file);
  let content: string;
  try {
    const info = await stat(full);
    if (!info.isFile()) return { changed: cache.remove(file), parsed: undefined };
    if (info.size > MAX_FILE_BYTES) {
      cache.readFailed(file, `is ${info.size} bytes; files over ${MAX_FILE_BYTES} bytes are not read`);
      return { changed: true, parsed: undefined };
    }
    content = await readFile(full, 'utf8');
  } catch (e) {
    if (isNotFound(e)) return { changed: cache.remove(file), parsed: undefined };
    cache.readFailed(file, `cannot be read: ${e instanceof Error ? e.message : String(e)}`);
    return { changed: true, parsed: undefined };
  }
  const update = cache.update(file, content);
  for (const s of update.parsed?.skipped ?? []) {
    const name = s.namespace === undefined ? (s.name ?? '') : `${s.namespace}/${s.name ?? ''}`;
    logger.info(
      { code: SourceCode.UnknownKind, kind: s.kind, apiVersion: s.apiVersion, name, file: s.origin },
      `skipping ${s.kind} ${name} in ${s.origin}: Skein does not read ${s.apiVersion} ${s.kind}`,
    );
  }
  return update;
}
