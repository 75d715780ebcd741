import type { MERGE_CONFLICT } from '../model/merge.js';

/**
 * Stable codes for the Ingress translator's diagnostics. Each problem is also a status condition on the
 * Ingress (see status.ts); the diagnostic is the log line. Codes are part of Skein's interface, so a code
 * is never renamed or reused; docs/errors.md lists each one.
 */
export const IngressCode = {
  /** An `ingress.skein.io/*` annotation has a value Skein cannot use, or is not one Skein knows. Ignored. */
  InvalidAnnotation: 'SKEIN_INGRESS_INVALID_ANNOTATION',
  /** A path Skein cannot serve (an ImplementationSpecific regular expression that does not compile). */
  InvalidPath: 'SKEIN_INGRESS_INVALID_PATH',
  /** A backend that does not resolve (no such Service or port, a resource backend): its paths get 503. */
  BackendNotFound: 'SKEIN_INGRESS_BACKEND_NOT_FOUND',
  /** A TLS Secret that is missing or invalid: its hosts are not served over TLS, nor in plain text. */
  TlsSecret: 'SKEIN_INGRESS_TLS_SECRET',
  /** Two Ingresses want one socket, one certificate host or the catch-all default backend; the older wins. */
  Conflict: 'SKEIN_INGRESS_CONFLICT',
  /** The translator produced IR that validate() rejects: a bug in Skein. The offending part is dropped. */
  Internal: 'SKEIN_INGRESS_INTERNAL',
} as const;
export type IngressCode = (typeof IngressCode)[keyof typeof IngressCode];

/**
 * One problem with one Ingress: a status condition entry and a diagnostic at once. `condition` says
 * which condition reports it (see status.ts), `reason` is that condition's reason.
 */
export interface IngressProblem {
  /** The Ingress translator's own, or SKEIN_MERGE_CONFLICT for what a Gateway took (mergeConflicts.ts). */
  readonly code: IngressCode | typeof MERGE_CONFLICT;
  readonly condition: 'PartiallyInvalid' | 'ResolvedRefs' | 'Conflicted' | 'Programmed';
  readonly reason: string;
  /** Dotted field path in the Ingress (`metadata.annotations[ingress.skein.io/http-port]`, `spec.tls[0]`). */
  readonly field: string;
  readonly message: string;
}
