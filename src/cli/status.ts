import { parseArgs } from 'node:util';
import { type Diagnostic, formatDiagnostic } from '../sources/objects.js';
import type { StandaloneStatus } from '../standalone.js';

/** Input problems `skein status` prints in full; the JSON output has every one. */
const MAX_PROBLEMS = 20;

const HELP = `Usage: skein status [--port N] [-o text|json]

Asks a running 'skein up' (on 127.0.0.1, default status port 9902) for: Envoy readiness, the versions
Envoy has ACKed per resource type, and any NACKs with Envoy's message.
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
  let body: StandaloneStatus;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    body = (await res.json()) as StandaloneStatus;
  } catch (e) {
    process.stderr.write(
      `skein status: no 'skein up' answers on ${url} (${e instanceof Error ? e.message : String(e)})\n`,
    );
    return 1;
  }
  if (values.output === 'json') {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(formatStatus(body));
  return 0;
}

export function formatStatus(s: StandaloneStatus): string {
  const lines: string[] = [];
  lines.push(`config:  ${s.configDir}`);
  lines.push(`xds:     ${s.xdsAddress}`);
  if (s.envoy.supervised) {
    lines.push(
      `envoy:   ${s.envoy.ready} (pid ${s.envoy.pid ?? '-'}, version ${s.envoy.version ?? '?'}, restarts ${s.envoy.restarts}, admin ${s.envoy.adminUrl ?? '-'})`,
    );
  } else {
    lines.push('envoy:   not supervised (--no-envoy)');
  }
  const build = s.lastBuild as
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
  const xds = s.xds;
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
  return `${lines.join('\n')}\n`;
}
