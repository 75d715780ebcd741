import type { IrStringMatch } from '../model/ir.js';

/**
 * Ingress hostnames. A host is precise (`foo.example.com`) or a wildcard (`*.example.com`), which
 * matches exactly one label in place of the `*`: `foo.example.com`, never `example.com` nor
 * `a.b.example.com` (networking.k8s.io/v1 IngressRule.host). Host-less rules use `*` here.
 *
 * Envoy's `*.example.com` virtual host domain matches one *or more* labels, so a wildcard virtual host
 * also receives `a.b.example.com`. The routes a wildcard host owns therefore carry a guard: a regular
 * expression on `:authority` that only a one-label host passes (see authorityGuard). A request that
 * fails the guard falls through to the routes after them, the host-less rules and the default backend,
 * exactly as if the wildcard had not matched.
 */

export const ANY_HOST = '*';

export function isWildcard(host: string): boolean {
  return host.startsWith('*.');
}

/** Whether `pattern` (precise or wildcard) matches the precise `host` the Ingress way (one label). */
export function matchesHost(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (!isWildcard(pattern) || isWildcard(host)) return false;
  const dot = host.indexOf('.');
  return dot > 0 && host.slice(dot) === pattern.slice(1);
}

/** The wildcard one label above a precise host (`a.example.com` → `*.example.com`), if any. */
export function parentWildcard(host: string): string | undefined {
  if (host === ANY_HOST || isWildcard(host)) return undefined;
  const dot = host.indexOf('.');
  return dot > 0 && host.indexOf('.', dot + 1) > 0 ? `*${host.slice(dot)}` : undefined;
}

/**
 * The `:authority` match that holds for exactly one label under a wildcard, with or without a port:
 * `*.example.com` → `[^.:]+\.[eE][xX]…[mM](:[0-9]+)?`. Envoy matches safe_regex against the whole value.
 * Hosts are case-insensitive; RE2 knows `(?i)`, but the IR's regexes must also compile as JavaScript
 * (validate.ts), so letters become two-letter classes instead.
 */
export function authorityGuard(wildcard: string): IrStringMatch {
  let suffix = '';
  for (const ch of wildcard.slice(1)) {
    if (ch === '.') suffix += '\\.';
    else if (/[a-z]/.test(ch)) suffix += `[${ch}${ch.toUpperCase()}]`;
    else suffix += ch;
  }
  return { name: ':authority', kind: 'RegularExpression', value: `[^.:]+${suffix}(:[0-9]+)?` };
}
