import { BlockList, isIP } from 'node:net';
import type { Gateway } from '../sources/objects.js';

/** Where a Gateway's listeners bind, or why they cannot. */
export type AddressResult =
  | {
      readonly ok: true;
      /** The addresses bound. */
      readonly addresses: readonly string[];
      /**
       * The addresses reported in status.addresses: those requested. A Gateway that asks for none binds
       * every interface (0.0.0.0), which no client can connect to, so nothing is reported for it.
       */
      readonly reported: readonly string[];
    }
  /** An address type Skein cannot bind (Hostname, NamedAddress, a vendor type): Accepted=False. */
  | { readonly ok: false; readonly unsupported: true; readonly message: string }
  /** An IPAddress that no listener can bind (not an IP, multicast, broadcast): Programmed=False (AddressNotUsable). */
  | { readonly ok: false; readonly unsupported: false; readonly message: string };

/** Every interface, when a Gateway asks for no address. */
export const ANY_ADDRESS = '0.0.0.0';

/** Addresses a TCP or UDP listener cannot bind as its local, unicast address. */
const UNBINDABLE = new BlockList();
UNBINDABLE.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast
UNBINDABLE.addAddress('255.255.255.255', 'ipv4'); // limited broadcast
UNBINDABLE.addSubnet('ff00::', 8, 'ipv6'); // multicast

/**
 * Step 3: a Gateway's addresses. Envoy binds sockets, so only `IPAddress` addresses can be honoured;
 * every one requested is bound (the spec asks to bind all listeners to every address assigned), in the
 * order given, without repeats, and reported in status. No address, or only IPAddress entries without a
 * value (asking the implementation to pick one), binds 0.0.0.0 and reports none: Skein does not pick one
 * address out of the machine's, and 0.0.0.0 is not an address a client can use.
 */
export function gatewayAddresses(gateway: Gateway): AddressResult {
  const out: string[] = [];
  for (const [i, a] of (gateway.spec?.addresses ?? []).entries()) {
    const type = a.type ?? 'IPAddress';
    if (type !== 'IPAddress') {
      return {
        ok: false,
        unsupported: true,
        message: `spec.addresses[${i}] has type ${type}; Skein binds only IPAddress addresses`,
      };
    }
    if (a.value === undefined) continue;
    const family = isIP(a.value);
    if (family === 0) {
      return {
        ok: false,
        unsupported: false,
        message: `spec.addresses[${i}]: "${a.value}" is not an IP address`,
      };
    }
    if (UNBINDABLE.check(a.value, family === 6 ? 'ipv6' : 'ipv4')) {
      return {
        ok: false,
        unsupported: false,
        message: `spec.addresses[${i}]: ${a.value} is a multicast or broadcast address, which a listener cannot bind`,
      };
    }
    if (!out.includes(a.value)) out.push(a.value);
  }
  return out.length > 0
    ? { ok: true, addresses: out, reported: out }
    : { ok: true, addresses: [ANY_ADDRESS], reported: [] };
}
