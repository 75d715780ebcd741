/**
 * Stable codes of the NetworkPolicy translator's diagnostics (docs/errors.md lists each). Each names the
 * object and the field; everything else keeps being enforced.
 */
export const NetpolCode = {
  /** A peer podSelector looks at a label identities leave out: the peer selects nothing. */
  ExcludedLabel: 'SKEIN_NETPOL_EXCLUDED_LABEL',
  /** The redirect annotation is not a list of ports: nothing of that policy is redirected. */
  InvalidAnnotation: 'SKEIN_NETPOL_INVALID_ANNOTATION',
  /** Two pods (or a pod and the node) claim one address: the first keeps it. */
  DuplicateAddress: 'SKEIN_NETPOL_DUPLICATE_ADDRESS',
  /** The redirect annotation while the L7 proxy is off (`l7Proxy: false`): its ports are allowed directly. */
  RedirectDisabled: 'SKEIN_NETPOL_REDIRECT_DISABLED',
  /** A pod of this node has no host-side interface: its policy cannot be enforced. */
  NoInterface: 'SKEIN_NETPOL_NO_INTERFACE',
  /** The translated IR does not validate: a Skein bug. */
  Internal: 'SKEIN_NETPOL_INTERNAL',
} as const;
export type NetpolCode = (typeof NetpolCode)[keyof typeof NetpolCode];
