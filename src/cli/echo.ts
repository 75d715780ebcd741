import { parseArgs } from 'node:util';
import { startEchoServer } from '../echo/echoServer.js';

const HELP = `Usage: skein echo --listen HOST:PORT [--name NAME] [--h2c]

Runs a small HTTP backend that answers every request with JSON naming itself (NAME) and echoing the
method, path and headers it got. Repeat --listen (as NAME=HOST:PORT) to run several.
`;

/** `skein echo`: backends for the quickstart and for trying routes by hand. Runs until SIGINT/SIGTERM. */
export async function runEcho(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      listen: { type: 'string', multiple: true },
      name: { type: 'string' },
      h2c: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true || values.listen === undefined) {
    process.stdout.write(HELP);
    return values.help === true ? 0 : 2;
  }
  const servers = [];
  for (const spec of values.listen) {
    const parsed = parseEchoSpec(spec, values.name);
    if (parsed === undefined) {
      process.stderr.write(`skein echo: --listen "${spec}" is not [NAME=]HOST:PORT\n`);
      return 2;
    }
    const s = await startEchoServer({ ...parsed, h2c: values.h2c === true });
    process.stderr.write(
      `skein echo: ${s.name} listening on ${s.host}:${s.port}${values.h2c === true ? ' (h2c)' : ''}\n`,
    );
    servers.push(s);
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await Promise.all(servers.map((s) => s.close()));
  return 0;
}

export function parseEchoSpec(
  spec: string,
  defaultName: string | undefined,
): { name: string; host: string; port: number } | undefined {
  const m = /^(?:([\w.-]+)=)?(\[[0-9a-fA-F:]+\]|[\w.-]+):(\d{1,5})$/.exec(spec);
  if (m === null) return undefined;
  const [, name, host = '', port = ''] = m;
  const n = Number(port);
  if (n < 1 || n > 65535) return undefined;
  return { name: name ?? defaultName ?? `echo-${port}`, host: host.replace(/^\[|\]$/g, ''), port: n };
}
