import { isIP } from 'node:net';
import type { Gateway } from '../sources/objects.js';

/** Where a Gateway's listeners bind, or why they cannot. */
export type AddressResult =
  | { readonly ok: true; readonly addresses: readonly string[] }
  /** An address type Skein cannot bind (Hostname, NamedAddress, a vendor type): Accepted=False. */
  | { readonly ok: false; readonly unsupported: true; readonly message: string }
  /** An IPAddress that is not an IP address: Programmed=False (AddressNotUsable). */
  | { readonly ok: false; readonly unsupported: false; readonly message: string };

/** Every interface, when a Gateway asks for no address. */
export const ANY_ADDRESS = '0.0.0.0';

/**
 * Step 3: a Gateway's addresses. Envoy binds sockets, so only `IPAddress` addresses can be honoured;
 * every one requested is bound (the spec asks to bind all listeners to every address assigned), in the
 * order given, without repeats. No address, or only IPAddress entries without a value (asking the
 * implementation to pick one), binds 0.0.0.0.
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
    if (isIP(a.value) === 0) {
      return {
        ok: false,
        unsupported: false,
        message: `spec.addresses[${i}]: "${a.value}" is not an IP address`,
      };
    }
    if (!out.includes(a.value)) out.push(a.value);
  }
  return { ok: true, addresses: out.length > 0 ? out : [ANY_ADDRESS] };
}
