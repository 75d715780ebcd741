/**
 * Stable codes for the xDS server. They appear in thrown errors and in log lines (`code` field), and tests
 * and operators match on them, so a code is never renamed or reused.
 */
export const XdsErrorCode = {
  /** `listen()` got an address that is neither `unix://…` nor `host:port`. */
  BadAddress: 'SKEIN_XDS_BAD_ADDRESS',
  /** A live process already accepts connections on the socket path; removing it would steal its clients. */
  AddressInUse: 'SKEIN_XDS_ADDRESS_IN_USE',
  /** The socket path exists but is not a socket: refusing to delete what may be someone's file. */
  NotASocket: 'SKEIN_XDS_NOT_A_SOCKET',
  /** gRPC could not bind (permissions, port taken, …). */
  ListenFailed: 'SKEIN_XDS_LISTEN_FAILED',
  /** `listen()` after `close()`: a closed gRPC server cannot be restarted. */
  Closed: 'SKEIN_XDS_CLOSED',
  /** A request that does not decode as the protobuf message the method takes. Logged; the stream goes on. */
  BadRequest: 'SKEIN_XDS_BAD_REQUEST',
  /** A request for a type URL Skein does not serve. Logged and ignored, as the xDS spec allows. */
  UnknownType: 'SKEIN_XDS_UNKNOWN_TYPE',
  /** A request on a per-type service (e.g. LDS) naming another type. Logged and ignored. */
  TypeMismatch: 'SKEIN_XDS_TYPE_MISMATCH',
  /** The client rejected a response (error_detail set): the config it holds is the last one it ACKed. */
  Nack: 'SKEIN_XDS_NACK',
  /** The node grouping strategy threw for a node: the stream is refused rather than served a wrong config. */
  NodeGroupFailed: 'SKEIN_XDS_NODE_GROUP_FAILED',
} as const;
export type XdsErrorCode = (typeof XdsErrorCode)[keyof typeof XdsErrorCode];

export class XdsError extends Error {
  readonly code: XdsErrorCode;

  constructor(code: XdsErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'XdsError';
    this.code = code;
  }
}
