import { runAgent } from './agent.js';
import { runEcho } from './echo.js';
import { runOperator } from './operator.js';
import { runStatus } from './status.js';
import { runTranslate } from './translate.js';
import { runUp } from './up.js';
import { runVersion } from './version.js';

/** Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad input (a missing config dir, an unknown flag). */
export const ExitCode = { Ok: 0, Failure: 1, Usage: 2 } as const;

const USAGE = `Usage: skein <command> [options]

Commands:
  up          Run the control plane and a node-wide Envoy on a directory of Kubernetes YAML (standalone mode)
  translate   Print the IR, the Envoy resources or the computed statuses for a directory, without running anything
  agent       Run the per-node agent on a Kubernetes cluster: informers, translation, xDS for the node's Envoy
  operator    Run the cluster-wide operator: leader election, status of Gateways, routes and Ingresses
  status      Show NACKs, ACKed versions per resource type and Envoy readiness of a running 'skein up'
  echo        Run a small echo backend (used by the quickstart)
  version     Print the version of Skein and of the Envoy it would run

Run 'skein <command> --help' for the options of a command.
`;

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'up':
        return await runUp(rest);
      case 'translate':
        return await runTranslate(rest);
      case 'agent':
        return await runAgent(rest);
      case 'operator':
        return await runOperator(rest);
      case 'status':
        return await runStatus(rest);
      case 'echo':
        return await runEcho(rest);
      case 'version':
      case '--version':
        return await runVersion(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(USAGE);
        return command === undefined ? ExitCode.Usage : ExitCode.Ok;
      default:
        process.stderr.write(`skein: unknown command "${command}"\n\n${USAGE}`);
        return ExitCode.Usage;
    }
  } catch (e) {
    // parseArgs throws TypeErrors with codes like ERR_PARSE_ARGS_UNKNOWN_OPTION: a usage error.
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`skein ${command}: ${(e as Error).message}\n`);
      return ExitCode.Usage;
    }
    process.stderr.write(`skein ${command}: ${describeFailure(e)}\n`);
    return ExitCode.Failure;
  }
}

/**
 * One line for a failure Skein knows (its error carries a `SKEIN_*` code: a port in use, no Envoy, a
 * socket path that cannot be made), the whole stack for anything else, which is a bug.
 */
export function describeFailure(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (typeof code === 'string' && code.startsWith('SKEIN_'))
    return `${code}: ${message.replace(/\s*\n\s*/g, ' ')}`;
  return `unexpected error (a bug in Skein): ${e instanceof Error ? (e.stack ?? message) : message}`;
}
