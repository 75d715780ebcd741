import { type Document, isCollection, LineCounter, parseAllDocuments } from 'yaml';
import type { z } from 'zod';
import {
  type BackendTLSPolicy,
  type ConfigMap,
  type Diagnostic,
  type EndpointSlice,
  type Gateway,
  type GatewayClass,
  type GRPCRoute,
  type HTTPRoute,
  type Ingress,
  type IngressClass,
  type KnownKind,
  knownKinds,
  type Namespace,
  type NetworkPolicy,
  objectKey,
  type Pod,
  type ReferenceGrant,
  type Secret,
  type Service,
  type TCPRoute,
  type TLSRoute,
  type UDPRoute,
} from '../objects.js';
import {
  acceptedApiVersions,
  clusterScoped,
  defaultLabels,
  normalApiVersion,
  objectSchemas,
} from './schemas.js';
import { SourceCode } from './sourceCodes.js';

/** An object Skein reads, with where it came from. */
export type KnownObject =
  | GatewayClass
  | Gateway
  | HTTPRoute
  | Service
  | EndpointSlice
  | GRPCRoute
  | ReferenceGrant
  | TLSRoute
  | TCPRoute
  | UDPRoute
  | BackendTLSPolicy
  | Secret
  | Namespace
  | Ingress
  | IngressClass
  | ConfigMap
  | NetworkPolicy
  | Pod;

export interface ParsedObject {
  readonly kind: KnownKind;
  /** `kind/namespace/name` (see objectKey). */
  readonly key: string;
  /** `relative/file.yaml#docIndex`. */
  readonly origin: string;
  /** Deep-frozen: translators memoise on object identity, so nothing may change an object in place. */
  readonly object: KnownObject;
}

/** A document of a kind Skein does not read (a Deployment, say). */
export interface SkippedObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly origin: string;
}

export interface ParsedFile {
  readonly objects: readonly ParsedObject[];
  readonly skipped: readonly SkippedObject[];
  readonly diagnostics: readonly Diagnostic[];
  /** The file is not valid YAML; `objects` is then empty and the caller keeps the last good ones. */
  readonly syntaxError: boolean;
}

/** At most this many problems are reported per object: the first few are what a person fixes first. */
const MAX_ISSUES_PER_OBJECT = 20;

/**
 * Parses one file of Kubernetes-shaped YAML (any number of `---`-separated documents) into the objects
 * Skein reads, checked as the API server would check them. Pure: the same content always gives the same
 * result. `file` is the path relative to the config directory, used in origins and messages.
 */
export function parseFile(file: string, content: string): ParsedFile {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(content, { lineCounter, prettyErrors: true });
  if (!Array.isArray(docs)) return { objects: [], skipped: [], diagnostics: [], syntaxError: false };

  const syntax = syntaxDiagnostics(file, docs);
  if (syntax.length > 0) return { objects: [], skipped: [], diagnostics: syntax, syntaxError: true };

  const objects: ParsedObject[] = [];
  const skipped: SkippedObject[] = [];
  const diagnostics: Diagnostic[] = [];
  docs.forEach((doc, index) => {
    const origin = `${file}#${index}`;
    const lineAt = (path: readonly PropertyKey[]): number | undefined => lineOf(doc, lineCounter, path);
    let value: unknown;
    try {
      // maxAliasCount bounds the expansion of YAML aliases ("billion laughs").
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      diagnostics.push({
        code: SourceCode.YamlSyntax,
        severity: 'error',
        origin,
        message: withLine(e instanceof Error ? e.message : String(e), lineAt([])),
      });
      return;
    }
    if (value === null || value === undefined) return; // an empty document, e.g. a trailing `---`
    const result = readDocument(value, origin, lineAt);
    diagnostics.push(...result.diagnostics);
    if (result.object !== undefined) objects.push(result.object);
    if (result.skipped !== undefined) skipped.push(result.skipped);
  });
  return { objects, skipped, diagnostics, syntaxError: false };
}

function syntaxDiagnostics(file: string, docs: readonly Document.Parsed[]): Diagnostic[] {
  const out: Diagnostic[] = [];
  docs.forEach((doc, index) => {
    for (const e of doc.errors) {
      const pos = e.linePos?.[0];
      // The first line of the message; the rest is a code excerpt meant for terminals.
      const first = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
      out.push({
        code: SourceCode.YamlSyntax,
        severity: 'error',
        origin: `${file}#${index}`,
        message: pos === undefined ? first : `${first} (line ${pos.line}, column ${pos.col})`,
      });
    }
  });
  return out;
}

interface DocumentResult {
  readonly object?: ParsedObject;
  readonly skipped?: SkippedObject;
  readonly diagnostics: Diagnostic[];
}

function readDocument(
  value: unknown,
  origin: string,
  lineAt: (path: readonly PropertyKey[]) => number | undefined,
): DocumentResult {
  if (!isRecord(value)) {
    return {
      diagnostics: [
        {
          code: SourceCode.NotAnObject,
          severity: 'error',
          origin,
          message: withLine(`a Kubernetes object must be a mapping, not ${describe(value)}`, lineAt([])),
        },
      ],
    };
  }
  const { apiVersion, kind } = value;
  const metadata = isRecord(value['metadata']) ? value['metadata'] : {};
  const rawName = typeof metadata['name'] === 'string' ? metadata['name'] : undefined;
  const rawNamespace = typeof metadata['namespace'] === 'string' ? metadata['namespace'] : undefined;
  for (const [field, v] of [
    ['apiVersion', apiVersion],
    ['kind', kind],
  ] as const) {
    if (typeof v !== 'string' || v === '') {
      return {
        diagnostics: [
          {
            code: v === undefined ? SourceCode.MissingField : SourceCode.InvalidField,
            severity: 'error',
            origin,
            object: objectKey(typeof kind === 'string' ? kind : '', rawNamespace ?? 'default', rawName),
            field,
            message: withLine(
              v === undefined ? 'is required' : `must be a non-empty string, not ${describe(v)}`,
              lineAt([field]),
            ),
          },
        ],
      };
    }
  }
  const known = knownKind(apiVersion as string, kind as string);
  if (known === undefined) {
    return {
      diagnostics: [],
      skipped: {
        apiVersion: apiVersion as string,
        kind: kind as string,
        namespace: rawNamespace,
        name: rawName,
        origin,
      },
    };
  }

  const namespace = clusterScoped.has(known) ? undefined : (rawNamespace ?? 'default');
  const key = objectKey(known, namespace ?? '', rawName);
  const schema: z.ZodType = objectSchemas[known];
  const parsed = schema.safeParse(value);
  const diagnostics: Diagnostic[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues.slice(0, MAX_ISSUES_PER_OBJECT)) {
      const missing = valueAt(value, issue.path) === undefined;
      diagnostics.push({
        code: missing ? SourceCode.MissingField : SourceCode.InvalidField,
        severity: 'error',
        origin,
        object: key,
        field: fieldPath(issue.path),
        message: withLine(
          // A missing field fails its type or enum check; say what the API server says.
          missing && (issue.code === 'invalid_type' || issue.code === 'invalid_value')
            ? 'is required'
            : issue.message,
          lineAt(issue.path),
        ),
      });
    }
    return { diagnostics };
  }
  for (const path of unknownFields(value, parsed.data, [])) {
    diagnostics.push({
      code: SourceCode.UnknownField,
      severity: 'warning',
      origin,
      object: key,
      field: fieldPath(path),
      message: withLine(`is not a field of ${known}; it is ignored`, lineAt(path)),
    });
  }

  // Defaults the API server would fill in: the namespace (as `kubectl apply` does), no namespace at all
  // for cluster-scoped kinds, labels it sets itself (a Namespace's name label), and the one apiVersion
  // of kinds served in several identical versions.
  const { namespace: _ignored, ...restMetadata } = metadata;
  const labels = defaultLabels(known, rawName);
  if (labels !== undefined) {
    restMetadata['labels'] = {
      ...(isRecord(restMetadata['labels']) ? restMetadata['labels'] : {}),
      ...labels,
    };
  }
  const object = {
    ...value,
    apiVersion: normalApiVersion[known] ?? apiVersion,
    metadata: namespace === undefined ? restMetadata : { ...restMetadata, namespace },
  };
  return {
    diagnostics,
    object: { kind: known, key, origin, object: deepFreeze(object) as unknown as KnownObject },
  };
}

function knownKind(apiVersion: string, kind: string): KnownKind | undefined {
  if (!Object.hasOwn(knownKinds, kind)) return undefined;
  const k = kind as KnownKind;
  return acceptedApiVersions[k].includes(apiVersion) ? k : undefined;
}

/** Paths present in `input` that the schema dropped from `output`: fields it does not know. */
function unknownFields(input: unknown, output: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (Array.isArray(input) && Array.isArray(output)) {
    return input.flatMap((item, i) => unknownFields(item, output[i], [...path, i]));
  }
  if (!isRecord(input) || !isRecord(output)) return [];
  const out: PropertyKey[][] = [];
  for (const key of Object.keys(input)) {
    if (!Object.hasOwn(output, key)) out.push([...path, key]);
    else out.push(...unknownFields(input[key], output[key], [...path, key]));
  }
  return out;
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let v = value;
  for (const key of path) {
    if (Array.isArray(v) && typeof key === 'number') v = v[key];
    else if (isRecord(v) && typeof key === 'string') v = v[key];
    else return undefined;
  }
  return v;
}

/** `['spec', 'rules', 0, 'matches']` → `spec.rules[0].matches`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** The line of the deepest node on `path` that exists in the document (1-based). */
function lineOf(
  doc: Document.Parsed,
  lineCounter: LineCounter,
  path: readonly PropertyKey[],
): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const prefix = path.slice(0, n).filter((k): k is string | number => typeof k !== 'symbol');
    const node: unknown = n === 0 ? doc.contents : doc.getIn(prefix, true);
    const range = rangeOf(node);
    if (range !== undefined) return lineCounter.linePos(range).line;
  }
  return undefined;
}

function rangeOf(node: unknown): number | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  if (!isCollection(node) && !('range' in node)) return undefined;
  const range = (node as { range?: unknown }).range;
  return Array.isArray(range) && typeof range[0] === 'number' ? range[0] : undefined;
}

function withLine(message: string, line: number | undefined): string {
  return line === undefined ? message : `${message} (line ${line})`;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}
