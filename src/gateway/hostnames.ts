/**
 * Hostname matching as the Gateway API defines it for listeners and routes. A hostname is either
 * precise (`foo.example.com`) or a wildcard (`*.example.com`), which matches one or more labels in
 * place of the `*`: `foo.example.com` and `a.b.example.com`, never `example.com` itself.
 */

export function isWildcard(hostname: string): boolean {
  return hostname.startsWith('*.');
}

/** Whether the precise `host` is matched by `pattern` (precise or wildcard). */
export function hostMatches(host: string, pattern: string): boolean {
  if (!isWildcard(pattern)) return host === pattern;
  const suffix = pattern.slice(1); // ".example.com"
  return host.length > suffix.length && host.endsWith(suffix);
}

/**
 * The hostnames a route serves on a listener: the intersection of the listener's hostname (absent: any)
 * and the route's hostnames (empty: any), following the HTTPRoute `hostnames` rules:
 *
 * - both absent: `*` (every host);
 * - one absent: the other;
 * - both given: each route hostname that matches the listener's is kept; a route wildcard that covers
 *   the listener's hostname yields the listener's (the more specific of the two); two wildcards yield
 *   the more specific one.
 *
 * An empty result means the route does not attach to this listener (NoMatchingListenerHostname).
 * The result is sorted and without repeats.
 */
export function intersectHostnames(listener: string | undefined, route: readonly string[]): string[] {
  if (route.length === 0) return [listener ?? '*'];
  const out = new Set<string>();
  for (const h of route) {
    if (listener === undefined || h === listener) {
      out.add(h);
    } else if (!isWildcard(h)) {
      if (hostMatches(h, listener)) out.add(h);
    } else if (!isWildcard(listener)) {
      if (hostMatches(listener, h)) out.add(listener);
    } else if (hostMatches(h.slice(2), listener)) {
      out.add(h); // route *.a.example.com within listener *.example.com
    } else if (hostMatches(listener.slice(2), h)) {
      out.add(listener); // listener *.a.example.com within route *.example.com
    }
  }
  return [...out].sort();
}

/**
 * Whether every host `pattern` matches is also matched by `by`: `*` covers everything, a hostname covers
 * itself, and a wildcard covers the hosts and the narrower wildcards under it (`*.example.com` covers
 * `a.example.com` and `*.a.example.com`).
 */
export function covers(by: string, pattern: string): boolean {
  if (by === '*' || by === pattern) return true;
  if (!isWildcard(by)) return false;
  return hostMatches(isWildcard(pattern) ? pattern.slice(2) : pattern, by);
}

/**
 * How specific a hostname is, for choosing among listeners that cover a host: a precise name beats any
 * wildcard, a longer wildcard suffix beats a shorter one, and `*` (a listener without hostname) is last.
 */
export function specificity(hostname: string): number {
  if (hostname === '*') return 0;
  return isWildcard(hostname) ? hostname.length : 1000 + hostname.length;
}
