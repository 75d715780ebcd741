/**
 * The identity numbers an agent handed out, kept across restarts in `<stateDir>/identities.json`, so the
 * policy translator gets them back as `previousIdentities` and every number stays what it was while its
 * label set exists (the datapath's maps and connection tracking hold them). Written only when the
 * allocation changed, atomically (a temporary file renamed over the old one): a crash mid-write leaves
 * the old file. The numbers are derived from the label sets (src/policy/identities.ts), so a lost file
 * costs nothing in the common case; what it guards are the numbers a hash collision moved.
 */

import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const IDENTITY_FILE = 'identities.json';

/** A state file that is there but not readable as identities; the agent derives the numbers afresh. */
export const IDENTITIES_UNREADABLE = 'SKEIN_AGENT_IDENTITIES_UNREADABLE';

interface IdentityFile {
  readonly version: 1;
  /** Identity key (src/policy/identities.ts) → number. */
  readonly identities: Readonly<Record<string, number>>;
}

export class IdentityStore {
  #saved: string;
  #previous: ReadonlyMap<string, number>;

  private constructor(
    readonly file: string,
    previous: ReadonlyMap<string, number>,
    saved: string,
  ) {
    this.#previous = previous;
    this.#saved = saved;
  }

  /**
   * Reads the file in `stateDir` if there is one. A file that does not parse is reported through
   * `warn` (with IDENTITIES_UNREADABLE) and replaced at the next save.
   */
  static async open(stateDir: string, warn: (message: string) => void): Promise<IdentityStore> {
    const file = path.join(stateDir, IDENTITY_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new IdentityStore(file, new Map(), '');
      warn(`${IDENTITIES_UNREADABLE}: cannot read ${file} (${String(e)}); identities are derived afresh`);
      return new IdentityStore(file, new Map(), '');
    }
    const map = parseIdentities(text);
    if (map === undefined) {
      warn(`${IDENTITIES_UNREADABLE}: ${file} is not an identity file; identities are derived afresh`);
      return new IdentityStore(file, new Map(), '');
    }
    return new IdentityStore(file, map, serialise(map));
  }

  /** The numbers as last saved (or read at start). */
  get previous(): ReadonlyMap<string, number> {
    return this.#previous;
  }

  /** Saves `identities` unless they are what the file holds already; true when it wrote. */
  async save(identities: ReadonlyMap<string, number>): Promise<boolean> {
    const text = serialise(identities);
    this.#previous = identities;
    if (text === this.#saved) return false;
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await writeFile(tmp, text, { mode: 0o600 });
    await rename(tmp, this.file);
    this.#saved = text;
    return true;
  }
}

function serialise(identities: ReadonlyMap<string, number>): string {
  const sorted = [...identities].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const file: IdentityFile = { version: 1, identities: Object.fromEntries(sorted) };
  return `${JSON.stringify(file, null, 1)}\n`;
}

function parseIdentities(text: string): Map<string, number> | undefined {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  const file = data as Partial<IdentityFile> | null;
  if (file?.version !== 1 || typeof file.identities !== 'object' || file.identities === null)
    return undefined;
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(file.identities)) {
    if (!Number.isInteger(v) || v <= 0) return undefined;
    out.set(k, v);
  }
  return out;
}
