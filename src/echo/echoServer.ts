import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';

/**
 * A tiny echo backend: answers every request with JSON naming itself and echoing the method, path and
 * headers it received. `skein echo` runs it for the quickstart, and tests use it as a real upstream.
 */
export interface EchoServer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Requests answered so far. */
  readonly requests: number;
  close(): Promise<void>;
}

export interface EchoReply {
  readonly backend: string;
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

export async function startEchoServer(opts: {
  name: string;
  host?: string;
  port?: number;
  /** Speak cleartext HTTP/2 (h2c) instead of HTTP/1.1. */
  h2c?: boolean;
}): Promise<EchoServer> {
  const host = opts.host ?? '127.0.0.1';
  let requests = 0;
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ): void => {
    requests++;
    const reply: EchoReply = {
      backend: opts.name,
      method: req.method ?? '',
      path: req.url ?? '',
      headers: req.headers,
    };
    const body = `${JSON.stringify(reply)}\n`;
    res.writeHead(200, { 'content-type': 'application/json', 'x-backend': opts.name });
    res.end(body);
  };
  const server = opts.h2c === true ? http2.createServer(handler) : http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name: opts.name,
    host,
    port,
    get requests() {
      return requests;
    },
    close: () =>
      new Promise<void>((resolve) => {
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
