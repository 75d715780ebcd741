import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { parse } from 'yaml';

/**
 * Envoy's bootstrap: the static template in envoy/bootstrap.yaml with the per-node fields set on the
 * parsed object (never by string substitution, so no value can change the document's structure).
 * The result is plain JSON-ready data for Envoy's `-c`.
 */

/** The cluster name that ADS points at; the template defines it. */
export const XDS_CLUSTER_NAME = 'skein_xds';

export interface BootstrapOptions {
  readonly nodeId: string;
  readonly nodeCluster: string;
  /**
   * The agent's xDS server: a Unix socket (`@name` for the abstract namespace; a relative path is resolved
   * against the current directory) or an IP literal and port for TCP.
   */
  readonly xds: { readonly socketPath: string } | { readonly host: string; readonly port: number };
  /** Admin listen address; loopback only (127.0.0.0/8 or ::1). Default 127.0.0.1. */
  readonly adminAddress?: string;
  /** Admin port; 0 lets the kernel pick (read it back with `--admin-address-path`). Default 9901. */
  readonly adminPort?: number;
  /** Incremental (delta) ADS instead of state of the world. */
  readonly delta: boolean;
  /**
   * How long Envoy waits for the first LDS/CDS answer before it starts without it (Envoy's default is
   * 15 s). Until then /ready reports PRE_INITIALIZING.
   */
  readonly initialFetchTimeoutMs?: number;
}

/** A rendered bootstrap: plain data in Envoy's proto3 JSON shape. */
export type EnvoyBootstrap = Record<string, unknown>;

export type BootstrapErrorCode =
  /** Admin can reconfigure and stop Envoy; exposing it beyond the host would hand that to the network. */
  | 'SKEIN_ENVOY_ADMIN_NOT_LOOPBACK'
  /** An option Envoy would reject (or misread) at start-up: better to fail before spawning it. */
  | 'SKEIN_ENVOY_BOOTSTRAP_INVALID'
  /** envoy/bootstrap.yaml is missing or no longer has the shape this code sets fields in: a packaging bug. */
  | 'SKEIN_ENVOY_BOOTSTRAP_TEMPLATE';

export class BootstrapError extends Error {
  override readonly name = 'BootstrapError';
  constructor(
    readonly code: BootstrapErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** True for IP literals in 127.0.0.0/8 and ::1 (also IPv4-mapped loopback). Names never count. */
export function isLoopbackAddress(address: string): boolean {
  const a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  switch (isIP(a)) {
    case 4:
      return a.split('.')[0] === '127';
    case 6: {
      const lower = a.toLowerCase();
      if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower)?.[1];
      return mapped !== undefined && isLoopbackAddress(mapped);
    }
    default:
      return false;
  }
}

/** Where the template lives: `<repo>/envoy/bootstrap.yaml`, two levels up from both src/envoy and dist/envoy. */
export const BOOTSTRAP_TEMPLATE_PATH = new URL('../../envoy/bootstrap.yaml', import.meta.url);

let template: EnvoyBootstrap | undefined;

/** The parsed template, read once per process. Callers get their own copy. */
export function loadBootstrapTemplate(): EnvoyBootstrap {
  if (template === undefined) {
    let text: string;
    try {
      text = readFileSync(BOOTSTRAP_TEMPLATE_PATH, 'utf8');
    } catch (err) {
      throw new BootstrapError(
        'SKEIN_ENVOY_BOOTSTRAP_TEMPLATE',
        `Cannot read the Envoy bootstrap template ${BOOTSTRAP_TEMPLATE_PATH.pathname}: ${(err as Error).message}`,
      );
    }
    const doc: unknown = parse(text);
    if (!isRecord(doc)) {
      throw new BootstrapError(
        'SKEIN_ENVOY_BOOTSTRAP_TEMPLATE',
        'The Envoy bootstrap template is not a YAML mapping',
      );
    }
    template = doc;
  }
  return structuredClone(template);
}

/** Renders the bootstrap for one node. Pure apart from reading the template once; throws BootstrapError. */
export function renderBootstrap(opts: BootstrapOptions): EnvoyBootstrap {
  const adminAddress = opts.adminAddress ?? '127.0.0.1';
  const adminPort = opts.adminPort ?? 9901;
  if (opts.nodeId.trim() === '') invalid('nodeId', opts.nodeId, 'it must not be empty');
  if (opts.nodeCluster.trim() === '') invalid('nodeCluster', opts.nodeCluster, 'it must not be empty');
  if (!isLoopbackAddress(adminAddress)) {
    throw new BootstrapError(
      'SKEIN_ENVOY_ADMIN_NOT_LOOPBACK',
      `Cannot bind Envoy's admin interface to ${JSON.stringify(adminAddress)}: it must be a loopback IP literal (127.0.0.0/8 or ::1), because admin can reconfigure and stop Envoy`,
    );
  }
  if (!isPort(adminPort, 0)) invalid('adminPort', adminPort, 'it must be an integer from 0 to 65535');
  if (
    opts.initialFetchTimeoutMs !== undefined &&
    !(Number.isInteger(opts.initialFetchTimeoutMs) && opts.initialFetchTimeoutMs >= 0)
  ) {
    invalid('initialFetchTimeoutMs', opts.initialFetchTimeoutMs, 'it must be a non-negative integer');
  }

  const b = loadBootstrapTemplate();

  const node = field(b, 'node');
  node['id'] = opts.nodeId;
  node['cluster'] = opts.nodeCluster;

  const dynamic = field(b, 'dynamic_resources');
  field(dynamic, 'ads_config')['api_type'] = opts.delta ? 'DELTA_GRPC' : 'GRPC';
  if (opts.initialFetchTimeoutMs !== undefined) {
    const timeout = duration(opts.initialFetchTimeoutMs);
    field(dynamic, 'lds_config')['initial_fetch_timeout'] = timeout;
    field(dynamic, 'cds_config')['initial_fetch_timeout'] = timeout;
  }

  const xdsCluster = list(field(b, 'static_resources'), 'clusters').find(
    (c) => c['name'] === XDS_CLUSTER_NAME,
  );
  if (xdsCluster === undefined)
    templateError(`static_resources.clusters has no cluster named ${XDS_CLUSTER_NAME}`);
  const lbEndpoint = first(
    list(first(list(field(xdsCluster, 'load_assignment'), 'endpoints'), 'endpoints'), 'lb_endpoints'),
    'lb_endpoints',
  );
  field(lbEndpoint, 'endpoint')['address'] = xdsAddress(opts.xds);

  const socketAddress = field(field(field(b, 'admin'), 'address'), 'socket_address');
  socketAddress['address'] = adminAddress.startsWith('[') ? adminAddress.slice(1, -1) : adminAddress;
  socketAddress['port_value'] = adminPort;

  return b;
}

/** The xDS cluster's endpoint address: a pipe for Unix sockets, a socket_address for TCP. */
function xdsAddress(xds: BootstrapOptions['xds']): Record<string, unknown> {
  if ('socketPath' in xds) {
    const p = xds.socketPath.startsWith('@') ? xds.socketPath : path.resolve(xds.socketPath);
    if (xds.socketPath === '' || p === '@')
      invalid('xds.socketPath', xds.socketPath, 'it must name a socket');
    // sun_path holds 108 bytes including the terminating NUL; Envoy refuses longer paths at start-up.
    if (Buffer.byteLength(p) > 107) invalid('xds.socketPath', p, 'a Unix socket path is at most 107 bytes');
    return { pipe: { path: p } };
  }
  if (isIP(xds.host) === 0) {
    invalid('xds.host', xds.host, 'the xDS cluster is STATIC, so it must be an IP literal, not a name');
  }
  if (!isPort(xds.port, 1)) invalid('xds.port', xds.port, 'it must be an integer from 1 to 65535');
  return { socket_address: { address: xds.host, port_value: xds.port } };
}

function isPort(n: number, min: number): boolean {
  return Number.isInteger(n) && n >= min && n <= 65535;
}

/** Milliseconds as a proto3 JSON Duration (`1.500s`). */
function duration(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`;
}

function invalid(option: string, value: unknown, why: string): never {
  throw new BootstrapError(
    'SKEIN_ENVOY_BOOTSTRAP_INVALID',
    `Cannot render the Envoy bootstrap with ${option} = ${JSON.stringify(value)}: ${why}`,
  );
}

function templateError(what: string): never {
  throw new BootstrapError(
    'SKEIN_ENVOY_BOOTSTRAP_TEMPLATE',
    `The Envoy bootstrap template is malformed: ${what}`,
  );
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = obj[key];
  if (!isRecord(v)) templateError(`${key} is not a mapping`);
  return v;
}

function list(obj: Record<string, unknown>, key: string): Record<string, unknown>[] {
  const v = obj[key];
  if (!Array.isArray(v) || !v.every(isRecord)) templateError(`${key} is not a list of mappings`);
  return v;
}

function first(items: Record<string, unknown>[], what: string): Record<string, unknown> {
  const v = items[0];
  if (v === undefined) templateError(`${what} is empty`);
  return v;
}
