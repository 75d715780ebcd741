import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.join(import.meta.dirname, '../..');

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('docs/errors.md', () => {
  it('documents every stable code and environment variable that src/ uses', async () => {
    const codes = new Set<string>();
    for (const f of await sourceFiles(path.join(root, 'src'))) {
      for (const m of (await readFile(f, 'utf8')).matchAll(/'(SKEIN_[A-Z0-9_]*[A-Z0-9])'/g))
        codes.add(m[1] ?? '');
    }
    expect(codes.size).toBeGreaterThan(40);
    const doc = await readFile(path.join(root, 'docs/errors.md'), 'utf8');
    const documented = new Set([...doc.matchAll(/`(SKEIN_[A-Z0-9_]+)`/g)].map((m) => m[1]));
    expect([...codes].filter((c) => !documented.has(c)).sort()).toEqual([]);
    // And nothing documented that no longer exists.
    expect([...documented].filter((c) => c !== undefined && !codes.has(c)).sort()).toEqual([]);
  });
});
