/**
 * The policy route that delivers redirected packets to the node proxy: packets the policy programs mark
 * (to-proxy) are looked up in a table whose only route is `local default dev lo`, so the stack delivers
 * them locally, to the socket bpf_sk_assign chose, whatever their destination address. Nothing is
 * rewritten: the proxy's accepted socket has the original destination as its local address.
 */

import { ip } from './interfaces.js';

export interface ProxyRoutingOptions {
  /** The network namespace (path) to configure; default this process's. */
  readonly netns?: string;
  /** The to-proxy mark and its mask (as in the policy programs' rodata). */
  readonly mark: number;
  readonly mask: number;
  /** The routing table. Default 2103. */
  readonly table?: number;
  /** The rule's priority (before `main`, 32766). Default 9. */
  readonly priority?: number;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

function rule(o: ProxyRoutingOptions): string[] {
  return [
    'fwmark',
    `${hex(o.mark)}/${hex(o.mask)}`,
    'lookup',
    String(o.table ?? 2103),
    'priority',
    String(o.priority ?? 9),
  ];
}

/** Installs the rule and routes (IPv4 and IPv6); running it again changes nothing. */
export async function installProxyRouting(o: ProxyRoutingOptions): Promise<void> {
  const table = String(o.table ?? 2103);
  for (const family of ['-4', '-6']) {
    try {
      await ip([family, 'route', 'replace', 'local', 'default', 'dev', 'lo', 'table', table], o.netns);
    } catch (err) {
      // A node without IPv6 has no IPv6 traffic to redirect.
      if (family === '-6' && String(err).includes('IPv6 is disabled')) continue;
      throw err;
    }
    // `ip rule` has no replace: delete what is there first (an error only means there was none).
    await ip([family, 'rule', 'del', ...rule(o)], o.netns).catch(() => {});
    await ip([family, 'rule', 'add', ...rule(o)], o.netns);
  }
}

/** Removes what installProxyRouting added; what is already gone is fine. */
export async function removeProxyRouting(o: ProxyRoutingOptions): Promise<void> {
  const table = String(o.table ?? 2103);
  for (const family of ['-4', '-6']) {
    await ip([family, 'rule', 'del', ...rule(o)], o.netns).catch(() => {});
    await ip([family, 'route', 'flush', 'table', table], o.netns).catch(() => {});
  }
}

/**
 * What of installProxyRouting's is there now, per family: the rule for the mark, and the table's route.
 * For cleanup's report and for the agent's start (it removes routing no redirect needs any more).
 */
export async function proxyRoutingState(
  o: ProxyRoutingOptions,
): Promise<{ family: 'IPv4' | 'IPv6'; rule: boolean; route: boolean }[]> {
  const table = String(o.table ?? 2103);
  const out: { family: 'IPv4' | 'IPv6'; rule: boolean; route: boolean }[] = [];
  for (const [flag, family] of [
    ['-4', 'IPv4'],
    ['-6', 'IPv6'],
  ] as const) {
    const rules = JSON.parse((await ip(['-j', flag, 'rule', 'show'], o.netns).catch(() => '[]')) || '[]') as {
      priority?: number;
      table?: string;
      fwmark?: string;
      fwmask?: string;
    }[];
    const rule = rules.some(
      (r) => r.priority === (o.priority ?? 9) && r.table === table && r.fwmark !== undefined,
    );
    // A table that does not exist is an error for `ip route show`: no route.
    const routes = await ip([flag, 'route', 'show', 'table', table], o.netns).catch(() => '');
    out.push({ family, rule, route: routes.trim() !== '' });
  }
  return out;
}
