/**
 * Stable codes for problems the Kubernetes source, the status writer and leader election report. They
 * appear in log lines (`code` field) and in thrown errors; operators and tests match on them, so a code
 * is never renamed or reused.
 */
export const KubeCode = {
  /** No usable kubeconfig: the file is missing or unreadable, or it names no current cluster. */
  Config: 'SKEIN_KUBE_CONFIG',
  /** A request to the API server failed (the message has the method, path, HTTP status and reason). */
  ApiError: 'SKEIN_KUBE_API_ERROR',
  /** The API server does not serve a kind (its CRD is not installed): treated as empty, looked for again. */
  KindMissing: 'SKEIN_KUBE_KIND_MISSING',
  /** RBAC denies a list or watch Skein needs (docs/kubernetes.md lists the rules); retried with backoff. */
  Forbidden: 'SKEIN_KUBE_FORBIDDEN',
  /** A list or watch failed (connection refused, reset, 5xx); it reconnects with capped backoff. */
  WatchFailed: 'SKEIN_KUBE_WATCH_FAILED',
  /** A watch's resourceVersion is older than the API server keeps (410 Gone): the kind is listed again. */
  WatchExpired: 'SKEIN_KUBE_WATCH_EXPIRED',
  /** An object from the API server without a name, or a watch event that is not an object: skipped. */
  BadObject: 'SKEIN_KUBE_BAD_OBJECT',
  /** Writing an object's status failed; it is retried with backoff, and the rest are written. */
  StatusWriteFailed: 'SKEIN_KUBE_STATUS_WRITE_FAILED',
  /** Acquiring or renewing the leader Lease failed (the API server's reason is in the message). */
  LeaseFailed: 'SKEIN_KUBE_LEASE_FAILED',
  /** This replica stopped being the leader (renew deadline passed, or another holder took the Lease). */
  LeadershipLost: 'SKEIN_KUBE_LEADERSHIP_LOST',
} as const;
export type KubeCode = (typeof KubeCode)[keyof typeof KubeCode];

/** A failed API request, with the HTTP status and the `reason` of the API server's Status object. */
export class KubeApiError extends Error {
  readonly code: KubeCode;
  /** HTTP status; 0 when no response arrived (connection refused, reset, timeout). */
  readonly status: number;
  /** `Status.reason` (`NotFound`, `Conflict`, `Expired`, `Forbidden`, …) when the server sent one. */
  readonly reason: string | undefined;

  constructor(
    status: number,
    reason: string | undefined,
    message: string,
    options?: { cause?: unknown; code?: KubeCode },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KubeApiError';
    this.code = options?.code ?? (status === 403 ? KubeCode.Forbidden : KubeCode.ApiError);
    this.status = status;
    this.reason = reason;
  }
}

/** The status of a failure, 0 for anything that is not a KubeApiError. */
export function statusOf(err: unknown): number {
  return err instanceof KubeApiError ? err.status : 0;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
