import { parseArgs } from 'node:util';
import type { AgentStatus } from '../agent.js';
import type { OperatorStatus } from '../operator.js';
import type { KubeSourceStatus } from '../sources/kubernetes/kubeSource.js';
import { type Diagnostic, formatDiagnostic } from '../sources/objects.js';
import type { StandaloneStatus } from '../standalone.js';
import type { XdsStatus } from '../xds/status.js';

/** Input problems `skein status` prints in full; the JSON output has every one. */
const MAX_PROBLEMS = 20;

const HELP = `Usage: skein status [--port N] [-o text|json]

Asks a running 'skein up' or 'skein agent' (on 127.0.0.1, default status port 9902) or 'skein operator'
(its --status-port, 9903 by default) for its state: Envoy readiness, the versions Envoy has ACKed per
resource type and any NACKs with Envoy's message; the informers of an agent or operator; an agent's
eBPF datapath; an operator's leader election and status writes.
`;

export async function runStatus(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      port: { type: 'string', default: '9902' },
      output: { type: 'string', short: 'o', default: 'text' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  const url = `http://127.0.0.1:${values.port}/status`;
  let body: AnyStatus;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    body = (await res.json()) as AnyStatus;
  } catch (e) {
    process.stderr.write(
      `skein status: no 'skein up', 'skein agent' or 'skein operator' answers on ${url} (${e instanceof Error ? e.message : String(e)})\n`,
    );
    return 1;
  }
  if (values.output === 'json') {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(formatAnyStatus(body));
  return 0;
}

/** What any of the three processes answers on /status. */
export type AnyStatus = StandaloneStatus | AgentStatus | OperatorStatus;

/** Which process answered, from the shape of its report. */
export function statusKind(s: AnyStatus): 'standalone' | 'agent' | 'operator' {
  if ('leader' in s) return 'operator';
  if ('nodeName' in s) return 'agent';
  return 'standalone';
}

/** The text of `skein status` for whichever process answered. */
export function formatAnyStatus(s: AnyStatus): string {
  if ('leader' in s) return formatOperatorStatus(s);
  if ('nodeName' in s) return formatAgentStatus(s);
  return formatStatus(s);
}

export function formatStatus(s: StandaloneStatus): string {
  return [`config:  ${s.configDir}`, ...envoyLines(s), ...buildLines(s.lastBuild), ...xdsLines(s.xds)]
    .join('\n')
    .concat('\n');
}

export function formatAgentStatus(s: AgentStatus): string {
  const lines = [`agent:   node ${s.nodeName}, API server ${s.server}`, ...kubeLines(s.kubernetes)];
  const d = s.datapath;
  if (!d.enabled) {
    lines.push(`datapath: off (${d.reason})`);
  } else {
    lines.push(
      `datapath: on, pins under ${d.pinRoot}; service load-balancing ${d.serviceLb ? `on (cgroup ${d.cgroupRoot})` : 'off'}; L7 proxy ${d.l7Proxy ? 'on' : 'off'}; tc attach ${d.attachMode ?? '-'}`,
    );
    lines.push(
      `  ${d.services} services, ${d.endpoints} local endpoints, ${d.identities} identities; proxy listeners: ${d.proxyListeners.length === 0 ? 'none' : d.proxyListeners.join(', ')}`,
    );
    lines.push(`  flow events: ${d.flowEvents.events} (${d.flowEvents.drops} drops)`);
    const u = d.lastUpdate;
    lines.push(
      u === null
        ? '  last update: none yet'
        : `  last update: ${u.at} (${u.durationMs.toFixed(1)} ms, ${d.updates} so far)${u.errors.length === 0 ? '' : `, ${u.errors.length} error(s)`}`,
    );
    for (const e of u?.errors ?? []) lines.push(`    error: ${e}`);
  }
  lines.push(...envoyLines(s), ...buildLines(s.lastBuild), ...xdsLines(s.xds));
  return `${lines.join('\n')}\n`;
}

export function formatOperatorStatus(s: OperatorStatus): string {
  const l = s.leader;
  const w = s.statusWriter;
  const lines = [
    `operator: ${l.identity}, API server ${s.server}`,
    `leader:  ${l.isLeader ? 'this replica' : l.holder === '' ? 'nobody (the Lease is free)' : l.holder} (Lease ${l.lease}, ${l.transitions} transitions)`,
    `status:  ${w.active ? 'writing' : 'not writing (not the leader)'}; ${w.written} written, ${w.conflicts} conflicts, ${w.failures} failures, ${w.pending} pending${w.lastError === undefined ? '' : `; last error: ${w.lastError}`}`,
    ...kubeLines(s.kubernetes),
    ...buildLines(s.lastBuild),
  ];
  return `${lines.join('\n')}\n`;
}

function kubeLines(k: KubeSourceStatus): string[] {
  const objects = Object.values(k.objects).reduce((a, b) => a + b, 0);
  const lines = [
    `kubernetes: ${k.synced ? 'synced' : 'NOT synced yet'} (${k.informers.length} informers, ${objects} objects, ${k.builds} builds)`,
  ];
  for (const i of [...k.informers, ...k.byName]) {
    if (!i.synced || i.missing || i.lastError !== undefined) {
      lines.push(
        `  ${i.resource}${i.selector === '' ? '' : ` (${i.selector})`}: ${i.missing ? 'not served (CRD missing)' : i.synced ? 'synced' : 'not synced'}${i.lastError === undefined ? '' : `; last error: ${i.lastError}`}`,
      );
    }
  }
  return lines;
}

function envoyLines(s: StandaloneStatus | AgentStatus): string[] {
  const lines = [`xds:     ${s.xdsAddress}`];
  if (s.envoy.supervised) {
    const version = 'version' in s.envoy ? `, version ${s.envoy.version ?? '?'}` : '';
    lines.push(
      `envoy:   ${s.envoy.ready} (pid ${s.envoy.pid ?? '-'}${version}, restarts ${s.envoy.restarts}, admin ${s.envoy.adminUrl ?? '-'})`,
    );
  } else {
    lines.push('envoy:   not supervised (--no-envoy)');
  }
  return lines;
}

function buildLines(lastBuild: unknown): string[] {
  const lines: string[] = [];
  const build = lastBuild as
    | {
        at?: string;
        published?: boolean;
        resources?: number;
        errors?: string[];
        diagnostics?: Diagnostic[];
      }
    | undefined;
  if (build !== undefined) {
    lines.push(
      `build:   ${build.published === true ? 'published' : 'NOT published'} at ${build.at ?? '?'} (${build.resources ?? 0} resources)`,
    );
    for (const e of build.errors ?? []) lines.push(`  error: ${e}`);
    // Problems in the input (a file that does not parse, a field with a bad value): errors first, each
    // naming its file and object. The last good config of those files keeps serving.
    const problems = [...(build.diagnostics ?? [])].sort((a, b) =>
      a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1,
    );
    lines.push(problems.length === 0 ? 'input:   no problems' : `input:   ${problems.length} problem(s)`);
    for (const d of problems.slice(0, MAX_PROBLEMS)) lines.push(`  ${d.severity}: ${formatDiagnostic(d)}`);
    if (problems.length > MAX_PROBLEMS)
      lines.push(`  ... and ${problems.length - MAX_PROBLEMS} more (skein status -o json lists them all)`);
  }
  return lines;
}

function xdsLines(xds: XdsStatus): string[] {
  const lines: string[] = [];
  lines.push('');
  lines.push('streams:');
  if (xds.streams.length === 0) lines.push('  (none connected)');
  for (const st of xds.streams) {
    lines.push(`  ${st.nodeId ?? '(no node yet)'} [${st.group ?? '-'}, ${st.kind}, since ${st.connectedAt}]`);
    for (const t of st.types) {
      const pending = t.pendingNonce !== null ? ` (waiting for ACK of nonce ${t.pendingNonce})` : '';
      const nack = t.lastNack !== null ? ` NACKed ${t.lastNack.version}` : '';
      lines.push(
        `    ${t.type.padEnd(4)} acked ${t.ackedVersion ?? '-'}  sent ${t.sentVersion ?? '-'}  resources ${t.resourceCount}${pending}${nack}`,
      );
    }
  }
  lines.push('');
  lines.push(xds.nacks.length === 0 ? 'NACKs:   none' : `NACKs:   ${xds.nacks.length} (newest last)`);
  for (const n of xds.nacks) {
    lines.push(
      `  ${n.time} ${n.type} from ${n.nodeId}: rejected version ${n.version}, keeps ${n.keptVersion ?? 'nothing'}: ${n.message}`,
    );
  }
  return lines;
}
