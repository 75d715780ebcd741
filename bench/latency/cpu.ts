/**
 * CPU time and memory from /proc, for bench/request-latency.ts: what the Envoys cost, and how much of
 * the machine something other than the bench used during a cell (other engineers' tests share it).
 */

import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc (USER_HZ; 100 on every Linux architecture we run on). */
const USER_HZ = 100;

/** The fields after the command name of /proc/<pid>/stat (the name may hold spaces and parentheses). */
function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system, every thread) a process has used: fields 14 and 15 of /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / USER_HZ;
}

/** This process's CPU seconds and those of its children it has waited for (fields 14 to 17). */
export function selfAndChildrenCpuSeconds(): number {
  const f = statFields('self');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / USER_HZ;
}

/**
 * CPU seconds the whole machine has spent in user, nice and system time, plus what the hypervisor
 * took (steal), from the first line of /proc/stat. Interrupt time is left out: without
 * CONFIG_IRQ_TIME_ACCOUNTING it is ticks that fell in softirq, much of it the bench's own packets.
 */
export function machineBusySeconds(): number {
  const [, user, nice, system, , , , , steal] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '')
    .trim()
    .split(/\s+/)
    .map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (steal ?? 0)) / USER_HZ;
}

/** Resident set size of a process in MiB, from /proc/<pid>/status. */
export function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
  return kb / 1024;
}
