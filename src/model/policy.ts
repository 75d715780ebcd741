/**
 * The policy IR: what the L3/L4 datapath enforces on one node, as plain data. No Kubernetes and no BPF
 * types: src/policy/ translates NetworkPolicy (and later other sources) into it, src/datapath/policyPlan.ts
 * turns it into map entries.
 *
 * Identities are numbers that stand for a set of security-relevant labels (a pod's labels with its
 * namespace's), for a CIDR (an ipBlock), or for a reserved peer (the node itself, the world). Policy is
 * written against identities, never against addresses, so a new pod with known labels needs no policy
 * change, only an ipcache entry.
 *
 * Every list is sorted (identities by id, the ipcache by prefix, endpoints by name, rules as translated),
 * so the same input gives the same IR byte for byte.
 */

/** Identities below this are reserved. */
export const FIRST_LABEL_IDENTITY = 256;
/** CIDR identities are allocated from here (bit 24: local to the node, never shared). */
export const FIRST_CIDR_IDENTITY = 0x0100_0000;
/** One past the largest identity. */
export const IDENTITY_LIMIT = 0x0200_0000;

/** The reserved identities. 0 is never an identity: the datapath uses it for "any remote". */
export const ReservedIdentity = {
  /** This node's own addresses (kubelet probes, host-network processes). */
  host: 1,
  /** Every address the ipcache does not know. */
  world: 2,
} as const;
export type ReservedIdentityName = keyof typeof ReservedIdentity;

export type PolicyIdentity =
  | {
      readonly id: number;
      readonly kind: 'labels';
      readonly namespace: string;
      /** The pod's security-relevant labels (see src/policy/identities.ts for what is left out). */
      readonly podLabels: Readonly<Record<string, string>>;
      /** Its namespace's labels (with kubernetes.io/metadata.name). */
      readonly namespaceLabels: Readonly<Record<string, string>>;
    }
  | {
      readonly id: number;
      readonly kind: 'cidr';
      /** Canonical prefix, `10.0.0.0/16` or `2001:db8::/64`. */
      readonly cidr: string;
    }
  | { readonly id: number; readonly kind: 'reserved'; readonly name: ReservedIdentityName };

/** An address (or prefix) of a pod or node, and its identity. CIDR identities are not listed here. */
export interface PolicyIpCacheEntry {
  /** Canonical prefix; pods and nodes have /32 or /128. */
  readonly prefix: string;
  readonly identity: number;
}

export type PolicyProtocol = 'TCP' | 'UDP' | 'SCTP';

/** Which traffic a rule is about: a protocol, and a port or port range of it (none: every port). */
export interface PolicyPort {
  readonly protocol: PolicyProtocol;
  readonly port?: number;
  /** With port: the last port of the range port..endPort. */
  readonly endPort?: number;
}

export type PolicyVerdict = 'allow' | 'deny' | 'redirect';

export interface PolicyRule {
  /** Remote identities the rule is about, sorted; 'any' is every remote (any identity, any address). */
  readonly peers: readonly number[] | 'any';
  /** Empty: every protocol and port (ICMP too). */
  readonly ports: readonly PolicyPort[];
  /** When several rules match a flow: deny wins over redirect, redirect over allow. */
  readonly verdict: PolicyVerdict;
  /** redirect: the node proxy's transparent listener port (TCP only). */
  readonly proxyPort?: number;
  /** Where the rule comes from, for people: `NetworkPolicy/ns/name ingress[0]`. */
  readonly origin: string;
}

/** One direction of one endpoint. */
export interface PolicyDirection {
  /** A policy selects the endpoint in this direction: what no rule allows is denied. */
  readonly enforced: boolean;
  /** Empty when not enforced (everything is allowed). */
  readonly rules: readonly PolicyRule[];
}

/** A pod on this node, with an interface the datapath attaches to. */
export interface PolicyEndpoint {
  /** `namespace/pod` */
  readonly name: string;
  readonly addresses: readonly string[];
  /** The host side of the pod's interface (the veth the CNI made). */
  readonly interface: string;
  readonly identity: number;
  readonly ingress: PolicyDirection;
  readonly egress: PolicyDirection;
}

export interface PolicyIr {
  readonly identities: readonly PolicyIdentity[];
  readonly ipcache: readonly PolicyIpCacheEntry[];
  readonly endpoints: readonly PolicyEndpoint[];
}

export const emptyPolicyIr: PolicyIr = { identities: [], ipcache: [], endpoints: [] };
