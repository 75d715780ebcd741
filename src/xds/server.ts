import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import {
  status as GrpcStatus,
  type handleBidiStreamingCall,
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
} from '@grpc/grpc-js';
import { Counter, Gauge, Registry } from 'prom-client';
import { ensureDirectory } from '../ensureDirectory.js';
import type { Logger } from '../log.js';
import type { SnapshotCache } from './cache.js';
import { XdsError, XdsErrorCode } from './errors.js';
import { ackChannel, nackChannel, sendChannel } from './events.js';
import { fetchResponse } from './fetch.js';
import { type FetchMethod, type StreamMethod, xdsServices } from './services.js';
import type { XdsNackRecord, XdsStatus } from './status.js';
import { XdsStream } from './stream.js';
import type { Decoded, DeltaRequest, NodeInfo, SotwRequest } from './wire.js';

export interface XdsServerOptions {
  readonly cache: SnapshotCache;
  readonly logger: Logger;
  /** Where the `skein_xds_*` metrics go; a new Registry if not given. */
  readonly registry?: Registry;
  /** `control_plane.identifier` in every response. Default `skein`. */
  readonly controlPlaneId?: string;
  /** How long `close()` lets streams finish before cutting connections. Default 500 ms. */
  readonly shutdownGraceMs?: number;
  /** How many recent NACKs `status()` keeps. Default 50. */
  readonly nackHistory?: number;
}

export interface XdsServer {
  /**
   * Binds `unix:///abs/path.sock` (a stale socket file left by a dead process is removed first; a live one
   * is an error) or `host:port` (port 0 picks one). Resolves to the bound address. May be called again to
   * listen on more addresses.
   */
  listen(address: string): Promise<string>;
  /** Ends every stream and stops the server. Idempotent. */
  close(): Promise<void>;
  status(): XdsStatus;
  /** The metrics registry in use. */
  readonly registry: Registry;
}

/** Sent as the node of a stream whose first request names none (Envoy always sends it; odd clients may not). */
const anonymousNode: NodeInfo = { id: '', cluster: '', userAgentName: '', metadata: {} };

interface ActiveStream {
  readonly stream: XdsStream;
  readonly end: () => void;
}

/**
 * The xDS management server: gRPC services for aggregated and per-type xDS, state of the world and delta,
 * over a Unix socket or loopback TCP. Each stream runs an `XdsStream` state machine fed by the cache.
 */
export function createXdsServer(options: XdsServerOptions): XdsServer {
  const grace = options.shutdownGraceMs ?? 500;
  if (!Number.isFinite(grace) || grace < 0) {
    throw new TypeError(
      `Cannot create the xDS server as shutdownGraceMs is not a duration: current value is ${grace}`,
    );
  }
  const history = options.nackHistory ?? 50;
  if (!Number.isInteger(history) || history < 1) {
    throw new TypeError(
      `Cannot create the xDS server as nackHistory is not a positive integer: current value is ${history}`,
    );
  }
  const { cache } = options;
  const log = options.logger.child({ component: 'xds' });
  const registry = options.registry ?? new Registry();
  const controlPlaneId = options.controlPlaneId ?? 'skein';
  const metrics = {
    nacks: counter(registry, 'skein_xds_nacks_total', 'xDS responses rejected by clients (NACKs), by type.', [
      'type',
    ]),
    responses: counter(registry, 'skein_xds_responses_total', 'xDS responses sent, by type.', ['type']),
    streams: gauge(registry, 'skein_xds_streams', 'Open xDS streams, by kind.', ['kind']),
  };

  const server = new Server({
    // Envoy's requests are small; the default 4 MiB receive limit stays. Responses have no limit.
    'grpc.max_send_message_length': -1,
  });
  const active = new Map<number, ActiveStream>();
  const nacks: XdsNackRecord[] = [];
  const sockets: string[] = [];
  let nextStreamId = 0;
  let closing: Promise<void> | undefined;

  function serve<Req extends SotwRequest | DeltaRequest>(
    method: StreamMethod,
    handle: (stream: XdsStream, request: Req) => void,
  ): handleBidiStreamingCall<Decoded<Req>, Buffer> {
    return (call: ServerDuplexStream<Decoded<Req>, Buffer>) => {
      if (closing !== undefined) {
        call.emit('error', { code: GrpcStatus.UNAVAILABLE, details: 'xDS server is shutting down' });
        return;
      }
      const id = ++nextStreamId;
      const slog = log.child({ stream: id, kind: method.kind });
      let unwatch: (() => void) | undefined;
      let finished = false;
      const stream: XdsStream = new XdsStream({
        id,
        kind: method.kind,
        delta: method.delta,
        typeUrl: method.typeUrl,
        peer: call.getPeer(),
        controlPlaneId,
        logger: log,
        verdicts: cache,
        hooks: {
          send: (bytes, event) => {
            if (finished) return;
            call.write(bytes);
            metrics.responses.inc({ type: event.type });
            slog.debug(
              {
                type: event.type,
                nonce: event.nonce,
                version: event.version,
                resources: event.resources.length,
              },
              'xDS response sent',
            );
            if (sendChannel.hasSubscribers) sendChannel.publish(event);
          },
          ack: (event) => {
            slog.debug({ type: event.type, nonce: event.nonce, version: event.version }, 'xDS ACK');
            if (ackChannel.hasSubscribers) ackChannel.publish(event);
          },
          nack: (record) => {
            nacks.push(record);
            if (nacks.length > history) nacks.splice(0, nacks.length - history);
            metrics.nacks.inc({ type: record.type });
            slog.warn(
              {
                code: XdsErrorCode.Nack,
                node: record.nodeId,
                type: record.type,
                nonce: record.nonce,
                version: record.version,
                keptVersion: record.keptVersion,
                error: record.message,
              },
              'client rejected xDS config; it keeps the last accepted version',
            );
            if (nackChannel.hasSubscribers) nackChannel.publish(record);
          },
        },
      });

      const finish = (reason: string): void => {
        if (finished) return;
        finished = true;
        stream.close();
        unwatch?.();
        active.delete(id);
        metrics.streams.dec({ kind: method.kind });
        slog.debug({ reason }, 'xDS stream closed');
      };
      active.set(id, {
        stream,
        end: () => {
          finish('server shutdown');
          call.end();
        },
      });
      metrics.streams.inc({ kind: method.kind });
      slog.debug({ peer: call.getPeer() }, 'xDS stream opened');

      call.on('data', (decoded: Decoded<Req>) => {
        if (finished) return;
        if (!decoded.ok) {
          slog.warn(
            { code: XdsErrorCode.BadRequest, error: decoded.error },
            'undecodable xDS request ignored',
          );
          return;
        }
        try {
          if (!stream.bound) {
            const node = decoded.request.node ?? anonymousNode;
            let group: string;
            try {
              group = cache.groupOf(node);
            } catch (e) {
              slog.error(
                { code: XdsErrorCode.NodeGroupFailed, node: node.id, err: e },
                'node grouping failed',
              );
              finish('node grouping failed');
              call.emit('error', { code: GrpcStatus.INTERNAL, details: `${XdsErrorCode.NodeGroupFailed}` });
              return;
            }
            stream.bind(node, group, cache.getSnapshot(group));
            unwatch = cache.watch(group, (snapshot) => {
              try {
                stream.setSnapshot(snapshot);
              } catch (e) {
                slog.error({ err: e }, 'pushing a snapshot to an xDS stream failed');
              }
            });
            slog.info({ node: node.id, group, peer: call.getPeer() }, 'xDS client connected');
          }
          handle(stream, decoded.request);
        } catch (e) {
          // A bug must not take the server down; the stream keeps its state and goes on.
          slog.error({ err: e }, 'handling an xDS request failed');
        }
      });
      call.on('end', () => {
        // The client half-closed: nothing more will come, so close our side too.
        finish('client ended');
        call.end();
      });
      call.on('cancelled', () => finish('cancelled'));
      call.on('error', (e: unknown) => {
        slog.debug({ err: e }, 'xDS stream error');
        finish('error');
      });
      call.on('close', () => finish('closed'));
    };
  }

  const fetch =
    (method: FetchMethod): handleUnaryCall<Decoded<SotwRequest>, Buffer> =>
    (call, callback) => {
      const decoded = call.request;
      if (!decoded.ok) {
        callback({
          code: GrpcStatus.INVALID_ARGUMENT,
          details: `${XdsErrorCode.BadRequest}: ${decoded.error}`,
        });
        return;
      }
      const req = decoded.request;
      if (req.typeUrl !== '' && req.typeUrl !== method.typeUrl) {
        callback({
          code: GrpcStatus.INVALID_ARGUMENT,
          details: `${XdsErrorCode.TypeMismatch}: ${req.typeUrl}`,
        });
        return;
      }
      try {
        const snapshot = cache.getSnapshot(cache.groupOf(req.node ?? anonymousNode));
        if (snapshot === undefined) {
          callback({ code: GrpcStatus.UNAVAILABLE, details: 'no configuration published yet' });
          return;
        }
        callback(null, fetchResponse(snapshot, method.typeUrl, req.resourceNames, controlPlaneId));
      } catch (e) {
        log.error({ err: e, path: method.path }, 'xDS fetch failed');
        callback({ code: GrpcStatus.INTERNAL, details: 'fetch failed' });
      }
    };

  for (const { definition, implementation } of xdsServices({
    sotw: (m) => serve<SotwRequest>(m, (s, r) => s.handleSotw(r)),
    delta: (m) => serve<DeltaRequest>(m, (s, r) => s.handleDelta(r)),
    fetch,
  })) {
    server.addService(definition, implementation);
  }

  return {
    registry,

    async listen(address: string): Promise<string> {
      if (closing !== undefined)
        throw new XdsError(XdsErrorCode.Closed, 'Cannot listen as the xDS server is closed');
      const target = parseAddress(address);
      if (target.kind === 'unix') await prepareSocketPath(target.path);
      const grpcAddress = target.kind === 'unix' ? `unix://${target.path}` : `${target.host}:${target.port}`;
      const port = await new Promise<number>((resolve, reject) => {
        server.bindAsync(grpcAddress, ServerCredentials.createInsecure(), (err, p) => {
          if (err === null) resolve(p);
          else
            reject(
              new XdsError(XdsErrorCode.ListenFailed, `Cannot listen on ${address}: ${err.message}`, {
                cause: err,
              }),
            );
        });
      });
      if (target.kind === 'unix') {
        sockets.push(target.path);
        log.info({ address: grpcAddress }, 'xDS server listening');
        return grpcAddress;
      }
      const bound = `${target.host}:${port}`;
      log.info({ address: bound }, 'xDS server listening');
      return bound;
    },

    close(): Promise<void> {
      closing ??= (async () => {
        for (const a of [...active.values()]) {
          try {
            a.end();
          } catch (e) {
            log.debug({ err: e }, 'ending an xDS stream failed');
          }
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, grace);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        for (const p of sockets) await unlink(p).catch(() => undefined);
        log.info('xDS server closed');
      })();
      return closing;
    },

    status(): XdsStatus {
      return {
        streams: [...active.values()].map((a) => a.stream.status()).sort((x, y) => x.id - y.id),
        nacks: [...nacks],
      };
    },
  };
}

type ParsedAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** `unix:///abs/path`, `unix:/abs/path`, `unix:relative/path`, or `host:port` / `[v6]:port`. */
export function parseAddress(address: string): ParsedAddress {
  if (address.startsWith('unix:')) {
    const rest = address.startsWith('unix://')
      ? address.slice('unix://'.length)
      : address.slice('unix:'.length);
    if (address.startsWith('unix://') && !rest.startsWith('/')) {
      throw new XdsError(
        XdsErrorCode.BadAddress,
        `Cannot listen on ${address} as unix:// needs an absolute path`,
      );
    }
    if (rest === '')
      throw new XdsError(XdsErrorCode.BadAddress, `Cannot listen on ${address}: no socket path`);
    return { kind: 'unix', path: path.resolve(rest) };
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(address);
  const port = Number(m?.[2]);
  if (m === null || m[1] === undefined || port > 65535) {
    throw new XdsError(
      XdsErrorCode.BadAddress,
      `Cannot listen on "${address}" as it is neither unix:///path nor host:port`,
    );
  }
  return { kind: 'tcp', host: m[1], port };
}

/**
 * Makes `p` free for a new socket. A socket file outlives a crashed process; binding over it fails with
 * EADDRINUSE, so it is removed, but only once a connect shows nobody is serving on it.
 */
async function prepareSocketPath(p: string): Promise<void> {
  const st = await lstat(p).catch((e: NodeJS.ErrnoException) => {
    // ENOTDIR: something on the way is a file; ensureDirectory below says which.
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return undefined;
    throw new XdsError(XdsErrorCode.ListenFailed, `Cannot listen on ${p}: ${e.message}`);
  });
  if (st === undefined) {
    const problem = await ensureDirectory(path.dirname(p));
    if (problem !== undefined) {
      throw new XdsError(XdsErrorCode.ListenFailed, `Cannot listen on ${p}: ${problem}`);
    }
    return;
  }
  if (!st.isSocket()) {
    throw new XdsError(XdsErrorCode.NotASocket, `Cannot listen on ${p} as it exists and is not a socket`);
  }
  const probe = await probeSocket(p);
  if (probe === 'alive') {
    throw new XdsError(
      XdsErrorCode.AddressInUse,
      `Cannot listen on ${p} as another process is serving on it`,
    );
  }
  if (probe !== 'stale') {
    throw new XdsError(
      XdsErrorCode.ListenFailed,
      `Cannot listen on ${p}: probing the old socket failed (${probe})`,
    );
  }
  await unlink(p);
}

function probeSocket(p: string): Promise<'alive' | 'stale' | string> {
  return new Promise((resolve) => {
    const s = connect(p);
    // A Unix-socket connect answers at once; one that hangs has a listener with a full backlog: alive.
    const timer = setTimeout(() => {
      s.destroy();
      resolve('alive');
    }, 1000);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve('alive');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code === 'ECONNREFUSED' ? 'stale' : (e.code ?? e.message));
    });
  });
}

/** A metric of the registry, created on first use: two servers may share one registry (tests, restarts). */
function counter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
): Counter<string> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string, labelNames: readonly string[]): Gauge<string> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

export type { StreamKind, XdsNackRecord, XdsStatus, XdsStreamStatus, XdsTypeStatus } from './status.js';
