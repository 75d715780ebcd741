/**
 * Stable codes for the translator's diagnostics (problems that are not status conditions). They are part
 * of Skein's interface, so a code is never renamed or reused.
 */
export const GatewayCode = {
  /** A Gateway names a GatewayClass that does not exist, so no controller serves it. Warning. */
  UnknownClass: 'SKEIN_GATEWAY_UNKNOWN_CLASS',
  /** The translator produced IR that validate() rejects: a bug in Skein. The offending part is dropped. */
  Internal: 'SKEIN_GATEWAY_INTERNAL',
} as const;
export type GatewayCode = (typeof GatewayCode)[keyof typeof GatewayCode];
