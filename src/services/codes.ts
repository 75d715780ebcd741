/**
 * Stable codes for the services translator's diagnostics (Kubernetes Service + EndpointSlice → services
 * IR). Each names the Service and the field; the rest of the Service, and every other one, is still
 * translated. Codes are never renamed or reused; docs/errors.md lists each one.
 */
export const ServicesCode = {
  /** A `service.skein.io/*` annotation has a value Skein cannot use, or is not one Skein knows. Ignored. */
  InvalidAnnotation: 'SKEIN_SERVICES_INVALID_ANNOTATION',
  /** A Service port's protocol the socket datapath cannot balance (SCTP): the port is not balanced. */
  UnsupportedProtocol: 'SKEIN_SERVICES_UNSUPPORTED_PROTOCOL',
  /** A cluster IP that is not an IP address: that address is not balanced. */
  InvalidClusterIp: 'SKEIN_SERVICES_INVALID_CLUSTER_IP',
  /** A session affinity setting Skein cannot honour: the port is balanced without affinity. */
  InvalidAffinity: 'SKEIN_SERVICES_INVALID_AFFINITY',
  /** The translator produced IR that validateServices rejects: a bug in Skein. The service is dropped. */
  Internal: 'SKEIN_SERVICES_INTERNAL',
} as const;
export type ServicesCode = (typeof ServicesCode)[keyof typeof ServicesCode];

/** `service.skein.io/lb-algorithm: maglev` asks for consistent hashing; `random` (the default) does not. */
export const LB_ALGORITHM_ANNOTATION = 'service.skein.io/lb-algorithm';
/** Every annotation under this prefix is Skein's; an unknown one is reported. */
export const ANNOTATION_PREFIX = 'service.skein.io/';
