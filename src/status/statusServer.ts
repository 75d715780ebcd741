import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/**
 * Skein's own local HTTP endpoint (127.0.0.1 only): `/status` (JSON for `skein status`), `/metrics`
 * (Prometheus), `/healthz` and `/readyz`. It only reads; nothing here changes config.
 */
export interface StatusServerDeps {
  readonly registry: Registry;
  /** The JSON `skein status` prints. */
  readonly status: () => Promise<unknown> | unknown;
  /** Ready once the first snapshot is published and Envoy (if supervised) is live. */
  readonly ready: () => Promise<boolean> | boolean;
}

export interface StatusServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startStatusServer(
  deps: StatusServerDeps,
  opts: { host?: string; port: number },
): Promise<StatusServer> {
  const server = http.createServer((req, res) => {
    void handle(deps, req.url ?? '/').then(
      ({ status, type, body }) => {
        res.writeHead(status, { 'content-type': type });
        res.end(body);
      },
      (e: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`${e instanceof Error ? e.message : String(e)}\n`);
      },
    );
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

async function handle(
  deps: StatusServerDeps,
  url: string,
): Promise<{ status: number; type: string; body: string }> {
  const path = url.split('?')[0];
  switch (path) {
    case '/status':
      return {
        status: 200,
        type: 'application/json',
        body: `${JSON.stringify(await deps.status(), null, 2)}\n`,
      };
    case '/metrics':
      return { status: 200, type: deps.registry.contentType, body: await deps.registry.metrics() };
    case '/healthz':
      return { status: 200, type: 'text/plain', body: 'ok\n' };
    case '/readyz': {
      const ok = await deps.ready();
      return { status: ok ? 200 : 503, type: 'text/plain', body: ok ? 'ready\n' : 'not ready\n' };
    }
    default:
      return {
        status: 404,
        type: 'text/plain',
        body: 'not found: try /status, /metrics, /healthz, /readyz\n',
      };
  }
}
