import { readFileSync } from 'node:fs';
import { findEnvoy } from '../envoy/findEnvoy.js';

export function skeinVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export async function runVersion(_argv: readonly string[]): Promise<number> {
  process.stdout.write(`skein ${skeinVersion()} (node ${process.version})\n`);
  try {
    const envoy = await findEnvoy();
    process.stdout.write(`envoy ${envoy.version} (${envoy.path}, from ${envoy.source})\n`);
  } catch (e) {
    process.stdout.write(`envoy: not found (${e instanceof Error ? e.message : String(e)})\n`);
  }
  return 0;
}
