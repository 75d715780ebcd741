/**
 * Stable codes for problems the YAML directory source finds. They are part of Skein's interface (logs,
 * `skein translate` output, tests match on them), so a code is never renamed or reused.
 */
export const SourceCode = {
  /** The config directory does not exist or is not a directory; nothing can be served from it. */
  NoDir: 'SKEIN_SOURCE_NO_DIR',
  /** A file is not valid YAML; the file's last good objects keep serving. */
  YamlSyntax: 'SKEIN_SOURCE_YAML_SYNTAX',
  /** A file could not be read (permissions, too large); its last good objects keep serving. */
  ReadFailed: 'SKEIN_SOURCE_READ_FAILED',
  /** A YAML document is not a mapping, so it cannot be a Kubernetes object. */
  NotAnObject: 'SKEIN_SOURCE_NOT_AN_OBJECT',
  /** A field has a value the API server's schema would reject (type, pattern, enum, range, CEL rule). */
  InvalidField: 'SKEIN_SOURCE_INVALID_FIELD',
  /** A field the API server's schema requires is absent. */
  MissingField: 'SKEIN_SOURCE_MISSING_FIELD',
  /** Two documents declare the same kind/namespace/name; the API server would keep only one. */
  DuplicateObject: 'SKEIN_SOURCE_DUPLICATE_OBJECT',
  /** A kind Skein does not read (a Deployment, say); it is skipped. Warning. */
  UnknownKind: 'SKEIN_SOURCE_UNKNOWN_KIND',
  /** A field the schema does not know (often a typo); it is ignored, as the API server would drop it. Warning. */
  UnknownField: 'SKEIN_SOURCE_UNKNOWN_FIELD',
} as const;
export type SourceCode = (typeof SourceCode)[keyof typeof SourceCode];

/** An error that stops a source from producing anything at all, with a stable `code`. */
export class SourceError extends Error {
  readonly code: SourceCode;

  constructor(code: SourceCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SourceError';
    this.code = code;
  }
}
