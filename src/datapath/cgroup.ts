/** Finding the cgroup v2 hierarchy the socket programs attach to. */

import { readFileSync } from 'node:fs';

/**
 * The mount point of the cgroup v2 hierarchy: /sys/fs/cgroup on a unified system, /sys/fs/cgroup/unified
 * on a hybrid one (v1 controllers beside it); undefined if there is none. `mounts` is /proc/self/mounts.
 */
export function cgroup2Mount(mounts?: string): string | undefined {
  let text = mounts;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/mounts', 'utf8');
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    const [, mountPoint, type] = line.split(' ');
    if (type === 'cgroup2' && mountPoint !== undefined) return mountPoint.replace(/\\040/g, ' ');
  }
  return undefined;
}
