import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { Ir } from '../../src/model/ir.js';
import type { XdsFlavor } from '../../src/xds/translate/translate.js';

/** The golden cases of the IR → xDS translator: `testdata/<case>.ir.yaml`, an IR written by hand. */

export const TESTDATA = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');

export interface TranslateCase {
  readonly name: string;
  readonly flavor: XdsFlavor;
  readonly ir: Ir;
}

/** Cases whose goldens are in the gRPC flavour; every other case is in the Envoy flavour. */
const GRPC_CASES = new Set(['grpc-flavor', 'grpc-filters']);

export function caseNames(): string[] {
  return readdirSync(TESTDATA)
    .filter((f) => f.endsWith('.ir.yaml'))
    .map((f) => f.slice(0, -'.ir.yaml'.length))
    .sort();
}

export function loadCase(name: string): TranslateCase {
  const ir = parse(readFileSync(path.join(TESTDATA, `${name}.ir.yaml`), 'utf8')) as Ir;
  return { name, flavor: GRPC_CASES.has(name) ? 'grpc' : 'envoy', ir };
}

export function loadCases(): TranslateCase[] {
  return caseNames().map(loadCase);
}
