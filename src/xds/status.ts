import type { TypeUrl } from './proto.js';

/**
 * What `server.status()` reports: one entry per connected stream, and the recent NACKs. Plain JSON (nulls,
 * no undefined), so `skein status` can print it as it is.
 */

/** How a client connected: aggregated (ADS) or one type per stream, state of the world or incremental. */
export type StreamKind =
  | 'ads-sotw'
  | 'ads-delta'
  | `${'lds' | 'rds' | 'cds' | 'eds' | 'sds'}-${'sotw' | 'delta'}`;

/** One rejected response. */
export interface XdsNackRecord {
  readonly streamId: number;
  readonly nodeId: string;
  readonly group: string;
  readonly typeUrl: TypeUrl;
  /** Short type name: LDS, RDS, CDS, EDS, SDS. */
  readonly type: string;
  /** Nonce of the rejected response. */
  readonly nonce: string;
  /** Version of the rejected response (SotW version_info; delta: the same hash over the full set). */
  readonly version: string;
  /** The version the client still runs: its last ACK for the type, or null if it never ACKed one. */
  readonly keptVersion: string | null;
  /** `error_detail.code` (a gRPC status code) and `error_detail.message`, Envoy's reason. */
  readonly code: number;
  readonly message: string;
  /** ISO 8601. */
  readonly time: string;
}

export interface XdsTypeStatus {
  readonly typeUrl: TypeUrl;
  readonly type: string;
  /** Subscribed to every resource of the type (LDS/CDS wildcard). */
  readonly wildcard: boolean;
  /** Explicitly subscribed names, sorted. */
  readonly names: readonly string[];
  readonly ackedVersion: string | null;
  readonly sentVersion: string | null;
  /** Nonce of the response awaiting ACK, if any. */
  readonly pendingNonce: string | null;
  /** Resources the client holds (in flight included). */
  readonly resourceCount: number;
  /** The last NACK of this type on this stream; cleared when a later version is ACKed. */
  readonly lastNack: XdsNackRecord | null;
}

export interface XdsStreamStatus {
  readonly id: number;
  readonly kind: StreamKind;
  /** Null until the first request names the node. */
  readonly nodeId: string | null;
  readonly group: string | null;
  readonly peer: string;
  readonly connectedAt: string;
  /** Types the client has asked for, in push order. */
  readonly types: readonly XdsTypeStatus[];
}

export interface XdsStatus {
  readonly streams: readonly XdsStreamStatus[];
  /** The most recent NACKs over all streams, oldest first. */
  readonly nacks: readonly XdsNackRecord[];
}
