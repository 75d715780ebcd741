import { mkdir, mkdtemp, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import type { LoadResult } from '../../src/sources/file/loadDirectory.js';
import { type DirectoryWatcher, watchDirectory } from '../../src/sources/file/watchDirectory.js';

/** The spec: a change reaches onChange well within a second. */
const DEADLINE_MS = 1000;

let dir: string;
let watcher: DirectoryWatcher | undefined;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'skein-watch-'));
});
afterEach(async () => {
  await watcher?.close();
  watcher = undefined;
  await rm(dir, { recursive: true, force: true });
});

const service = (name: string, port = 80): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  ports: [{ port: ${port} }]\n`;

/** Collects results and hands them out in order, each within a deadline. */
function results(): {
  onChange: (r: LoadResult) => void;
  next: (ms?: number) => Promise<LoadResult>;
  pending: () => number;
} {
  const queue: LoadResult[] = [];
  const waiters: ((r: LoadResult) => void)[] = [];
  return {
    onChange: (r) => {
      const w = waiters.shift();
      if (w !== undefined) w(r);
      else queue.push(r);
    },
    next: (ms = DEADLINE_MS) => {
      const r = queue.shift();
      if (r !== undefined) return Promise.resolve(r);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no change delivered within ${ms} ms`));
        }, ms);
        const done = (x: LoadResult): void => {
          clearTimeout(timer);
          resolve(x);
        };
        waiters.push(done);
      });
    },
    pending: () => queue.length,
  };
}

/** A pino logger writing JSON lines into memory. */
function memoryLogger(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return {
    logger: pino({ level: 'debug', base: null }, stream),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const names = (r: LoadResult): string[] => r.objects.services.map((s) => s.metadata?.name ?? '');

describe('watchDirectory', () => {
  it('delivers the initial result, then each edit within a second, re-parsing only the edited file', async () => {
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    await writeFile(path.join(dir, 'b.yaml'), service('b'));
    const got = results();
    watcher = await watchDirectory(dir, { logger: silentLogger, onChange: got.onChange });
    const initial = await got.next(0);
    expect(names(initial)).toEqual(['a', 'b']);
    expect(initial.parsedFiles).toEqual(['a.yaml', 'b.yaml']);

    const t0 = performance.now();
    await writeFile(path.join(dir, 'b.yaml'), service('b', 81));
    const edited = await got.next();
    expect(performance.now() - t0).toBeLessThan(DEADLINE_MS);
    expect(edited.parsedFiles).toEqual(['b.yaml']);
    expect(edited.objects.services[0]).toBe(initial.objects.services[0]);
    expect(edited.objects.services[1]).not.toBe(initial.objects.services[1]);
    expect(edited.objects.services[1]?.spec?.ports?.[0]?.port).toBe(81);
  });

  it('sees deletions, files replaced by rename (as editors save), and deletions after that', async () => {
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    await writeFile(path.join(dir, 'b.yaml'), service('b'));
    const got = results();
    watcher = await watchDirectory(dir, { logger: silentLogger, onChange: got.onChange });
    await got.next(0);

    await writeFile(path.join(dir, '.b.yaml.swp'), service('b2'));
    await rename(path.join(dir, '.b.yaml.swp'), path.join(dir, 'b.yaml'));
    const renamed = await got.next();
    expect(names(renamed)).toEqual(['a', 'b2']);
    expect(renamed.parsedFiles).toEqual(['b.yaml']);

    await rm(path.join(dir, 'b.yaml'));
    expect(names(await got.next())).toEqual(['a']);

    await rm(path.join(dir, 'a.yaml'));
    expect(names(await got.next())).toEqual([]);
  });

  it('follows new and removed subdirectories', async () => {
    const got = results();
    watcher = await watchDirectory(dir, { logger: silentLogger, onChange: got.onChange });
    expect(names(await got.next(0))).toEqual([]);

    await mkdir(path.join(dir, 'team/web'), { recursive: true });
    await writeFile(path.join(dir, 'team/web/svc.yaml'), service('web'));
    let r = await got.next();
    // The directory may show up before its file does: wait for the file.
    while (names(r).length === 0) r = await got.next();
    expect(names(r)).toEqual(['web']);
    expect(r.objects.origins.get('Service/default/web')).toBe('team/web/svc.yaml#0');

    // A file written later into the (now watched) subdirectory.
    await writeFile(path.join(dir, 'team/web/more.yaml'), service('more'));
    expect(names(await got.next())).toEqual(['more', 'web']);

    await rm(path.join(dir, 'team'), { recursive: true });
    r = await got.next();
    while (names(r).length > 0) r = await got.next();
    expect(names(r)).toEqual([]);

    // Recreated under the same name: files written into it later are still seen.
    await mkdir(path.join(dir, 'team'));
    await new Promise((resolve) => setTimeout(resolve, 150)); // let the new directory be watched
    await writeFile(path.join(dir, 'team/again.yaml'), service('again'));
    r = await got.next();
    expect(names(r)).toEqual(['again']);
  });

  it('keeps the last good objects through a syntax error, and logs a skipped kind once per file content', async () => {
    await writeFile(
      path.join(dir, 'a.yaml'),
      `${service('a')}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: { name: d }\n`,
    );
    await writeFile(path.join(dir, 'b.yaml'), service('b'));
    const log = memoryLogger();
    const got = results();
    watcher = await watchDirectory(dir, { logger: log.logger, onChange: got.onChange });
    const initial = await got.next(0);
    const skipped = () => log.lines().filter((l) => l['code'] === 'SKEIN_SOURCE_UNKNOWN_KIND').length;
    expect(skipped()).toBe(1);

    await writeFile(path.join(dir, 'b.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: { name: b\n');
    const broken = await got.next();
    expect(broken.objects.services[1]).toBe(initial.objects.services[1]);
    expect(broken.diagnostics[0]).toMatchObject({ code: 'SKEIN_SOURCE_YAML_SYNTAX', origin: 'b.yaml#0' });
    expect(broken.diagnostics[0]?.message).toMatch(/line \d+/);
    expect(skipped()).toBe(1); // a.yaml was not parsed again

    await writeFile(path.join(dir, 'b.yaml'), service('b', 82));
    const fixed = await got.next();
    expect(fixed.diagnostics).toEqual([]);
    expect(fixed.objects.services[1]?.spec?.ports?.[0]?.port).toBe(82);
    expect(skipped()).toBe(1);
  });

  it('does not call onChange when a file is touched without changing, nor after close', async () => {
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    const got = results();
    const w = await watchDirectory(dir, { logger: silentLogger, onChange: got.onChange, debounceMs: 10 });
    watcher = w;
    await got.next(0);
    const now = new Date();
    await utimes(path.join(dir, 'a.yaml'), now, now);
    await writeFile(path.join(dir, 'a.yaml'), service('a'));
    await expect(got.next(300)).rejects.toThrow(/no change/);

    await w.close();
    await writeFile(path.join(dir, 'a.yaml'), service('a', 99));
    await expect(got.next(300)).rejects.toThrow(/no change/);
    expect(got.pending()).toBe(0);
  });

  it('follows a Kubernetes ConfigMap mount, whose update swaps the ..data symlink', async () => {
    // The layout the kubelet writes: files are symlinks through ..data to a timestamped directory.
    await mkdir(path.join(dir, '..2024_01_01'));
    await writeFile(path.join(dir, '..2024_01_01/svc.yaml'), service('web', 80));
    await symlink('..2024_01_01', path.join(dir, '..data'));
    await symlink('..data/svc.yaml', path.join(dir, 'svc.yaml'));
    const got = results();
    watcher = await watchDirectory(dir, { logger: silentLogger, onChange: got.onChange });
    const initial = await got.next(0);
    expect(initial.objects.services[0]?.spec?.ports?.[0]?.port).toBe(80);

    await mkdir(path.join(dir, '..2024_02_02'));
    await writeFile(path.join(dir, '..2024_02_02/svc.yaml'), service('web', 8080));
    await symlink('..2024_02_02', path.join(dir, '..data_tmp'));
    await rename(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
    await rm(path.join(dir, '..2024_01_01'), { recursive: true });
    const updated = await got.next();
    expect(updated.objects.services[0]?.spec?.ports?.[0]?.port).toBe(8080);
    expect(updated.parsedFiles).toEqual(['svc.yaml']);
  });

  it('fails with SKEIN_SOURCE_NO_DIR for a missing directory', async () => {
    await expect(
      watchDirectory(path.join(dir, 'missing'), { logger: silentLogger, onChange: () => undefined }),
    ).rejects.toMatchObject({ code: 'SKEIN_SOURCE_NO_DIR' });
  });
});
