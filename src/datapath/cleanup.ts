/**
 * `skein agent --cleanup`: removes everything the datapath attached, pinned and routed on this node, and
 * says what, one line each. Safe to run twice (the second run finds nothing), with or without an agent
 * having run, and after a crash: it works from what is pinned, not from memory. It does not touch the
 * identity file (numbers kept for the next agent) or anything outside Skein's pin root.
 */

import { existsSync, readdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { unpin } from './bpfObject.js';
import { FlowRingBuffer } from './codecs/flow.js';
import { detachCgroupLinks, LB_LINK_DIR } from './lb.js';
import { cleanupPolicy, POLICY_LINK_DIR } from './policy.js';
import { type ProxyRoutingOptions, proxyRoutingState, removeProxyRouting } from './proxyRouting.js';

export interface CleanupOptions {
  readonly pinRoot: string;
  /** The network namespace of the pod interfaces and the proxy routing; default this process's. */
  readonly netns?: string;
  readonly proxyRouting: ProxyRoutingOptions;
}

/** Every name Skein pins starts with this; nothing else under the pin root is touched. */
const PIN_PREFIX = 'skein_';

/** Removes it all; the lines say what was removed (empty: there was nothing). */
export async function cleanupDatapath(o: CleanupOptions): Promise<string[]> {
  const removed: string[] = [];
  if (existsSync(o.pinRoot)) {
    // The socket load balancer's cgroup links, one directory per cgroup.
    const lbLinks = path.join(o.pinRoot, LB_LINK_DIR);
    if (existsSync(lbLinks)) {
      for (const dir of readdirSync(lbLinks).sort()) {
        for (const name of detachCgroupLinks(path.join(lbLinks, dir)))
          removed.push(`cgroup link ${name} (${path.join(lbLinks, dir, name)})`);
      }
      rmdirSync(lbLinks);
    }
    // The policy programs: tcx links (pinned) or legacy tc filters (found through the endpoints map),
    // and the policy maps.
    const policyLinks = path.join(o.pinRoot, POLICY_LINK_DIR);
    const pinnedTcx = existsSync(policyLinks) ? readdirSync(policyLinks).sort() : [];
    const policy = cleanupPolicy({
      pinRoot: o.pinRoot,
      ...(o.netns === undefined ? {} : { netns: o.netns }),
    });
    for (const name of pinnedTcx) removed.push(`tcx link ${name} (${path.join(policyLinks, name)})`);
    const filters = policy.detached - pinnedTcx.length;
    if (filters > 0) removed.push(`${filters} legacy tc filter(s) of the policy programs`);
    for (const name of policy.unpinned) removed.push(`pinned map ${name}`);
    // Every other pin of Skein's: the load balancer's maps, the shared flow ring buffer.
    for (const name of readdirSync(o.pinRoot).sort()) {
      if (!name.startsWith(PIN_PREFIX)) continue;
      if (unpin(path.join(o.pinRoot, name)))
        removed.push(`pinned ${name === FlowRingBuffer ? 'ring buffer' : 'map'} ${name}`);
    }
    if (readdirSync(o.pinRoot).length === 0) {
      rmdirSync(o.pinRoot);
      removed.push(`pin directory ${o.pinRoot}`);
    }
  }
  // The policy route of the L7 redirect.
  const routing = await proxyRoutingState(o.proxyRouting);
  if (routing.some((r) => r.rule || r.route)) {
    await removeProxyRouting(o.proxyRouting);
    const table = o.proxyRouting.table ?? 2103;
    for (const r of routing) {
      if (r.rule)
        removed.push(
          `${r.family} rule fwmark 0x${o.proxyRouting.mark.toString(16)}/0x${o.proxyRouting.mask.toString(16)} lookup ${table}`,
        );
      if (r.route) removed.push(`${r.family} route local default dev lo table ${table}`);
    }
  }
  return removed;
}
