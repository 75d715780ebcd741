import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Small real backends for tests: HTTP/1.1 (node:http) and cleartext HTTP/2 with prior knowledge (h2c,
 * node:http2), on a loopback address. Every request gets 200 and a JSON body naming the backend and
 * echoing what it received, so a test can tell which backend Envoy picked and what Envoy changed.
 */

export interface BackendOptions {
  /** A loopback address to listen on. */
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Reported in every reply (and the `x-backend` response header). */
  readonly name: string;
}

/** The JSON body of every reply. */
export interface BackendReply {
  readonly backend: string;
  readonly protocol: 'HTTP/1.1' | 'HTTP/1.0' | 'h2c';
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Bytes of request body received. */
  readonly bodyBytes: number;
}

export interface Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Requests answered so far. */
  readonly requests: number;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

export interface BackendKind {
  start(opts: BackendOptions): Promise<Backend>;
}

type Request = http.IncomingMessage | http2.Http2ServerRequest;
type Response = http.ServerResponse | http2.Http2ServerResponse;

function handler(name: string, protocol: (req: Request) => BackendReply['protocol'], count: () => void) {
  return (req: Request, res: Response): void => {
    let bodyBytes = 0;
    req.on('data', (chunk: Buffer) => {
      bodyBytes += chunk.length;
    });
    req.on('end', () => {
      count();
      const reply: BackendReply = {
        backend: name,
        protocol: protocol(req),
        method: req.method ?? '',
        path: req.url ?? '',
        // HTTP/2 pseudo-headers are not headers of the request Envoy forwarded; leave them out.
        headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !k.startsWith(':'))),
        bodyBytes,
      };
      const body = JSON.stringify(reply);
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        'x-backend': name,
      });
      res.end(body);
    });
  };
}

async function listen(server: http.Server | http2.Http2Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** HTTP/1.1 backend. */
export const http1Backend: BackendKind = {
  async start({ host, port, name }) {
    let requests = 0;
    const server = http.createServer(
      { keepAliveTimeout: 5000 },
      handler(
        name,
        (req) => (req.httpVersion === '1.0' ? 'HTTP/1.0' : 'HTTP/1.1'),
        () => requests++,
      ),
    );
    const bound = await listen(server, host, port);
    return {
      name,
      host,
      port: bound,
      get requests() {
        return requests;
      },
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    };
  },
};

/** Cleartext HTTP/2 backend (prior knowledge, as Envoy speaks to an upstream with http2_protocol_options). */
export const h2cBackend: BackendKind = {
  async start({ host, port, name }) {
    let requests = 0;
    const server = http2.createServer(
      handler(
        name,
        () => 'h2c',
        () => requests++,
      ),
    );
    // http2 servers have no closeAllConnections: track the sockets to destroy them on close.
    const sockets = new Set<Duplex>();
    server.on('connection', (socket: Duplex) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    const bound = await listen(server, host, port);
    return {
      name,
      host,
      port: bound,
      get requests() {
        return requests;
      },
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        }),
    };
  },
};
