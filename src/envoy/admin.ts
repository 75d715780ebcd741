/**
 * A small client of Envoy's admin API (https://www.envoyproxy.io/docs/envoy/latest/operations/admin),
 * over fetch. Admin listens on loopback only; every call is bounded by a timeout.
 */

export type AdminErrorCode =
  /** Admin did not answer (not listening yet, Envoy gone) or the request timed out. */
  | 'SKEIN_ENVOY_ADMIN_UNREACHABLE'
  /** Admin answered with an unexpected status or a body that does not parse. */
  | 'SKEIN_ENVOY_ADMIN_BAD_RESPONSE';

export class AdminError extends Error {
  override readonly name = 'AdminError';
  constructor(
    readonly code: AdminErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface AdminRequestOptions {
  /** Per-request timeout. Default 5000 ms. */
  readonly timeoutMs?: number;
}

/** Envoy's server states as /ready and /server_info name them. */
export type ServerState = 'LIVE' | 'DRAINING' | 'PRE_INITIALIZING' | 'INITIALIZING';

/** The parts of /server_info Skein reads; Envoy sends more. */
export interface ServerInfo {
  readonly version: string;
  readonly state: ServerState;
  readonly uptime_current_epoch: string;
  readonly uptime_all_epochs: string;
  readonly hot_restart_version: string;
  readonly command_line_options: Readonly<Record<string, unknown>>;
  readonly node: Readonly<Record<string, unknown>>;
}

/** /config_dump: one entry per config tracker, each tagged with its `@type`. */
export interface ConfigDump {
  readonly configs: readonly (Readonly<Record<string, unknown>> & { readonly '@type': string })[];
}

export interface ConfigDumpParams {
  /** Only this resource, e.g. `dynamic_active_clusters`. */
  readonly resource?: string;
  /** A field mask applied to each returned config, e.g. `cluster.name`. */
  readonly mask?: string;
  /** Only resources whose name matches this regex. */
  readonly nameRegex?: string;
  /** Include EDS (endpoint) configs, which Envoy omits by default. */
  readonly includeEds?: boolean;
}

/** /clusters?format=json. */
export interface ClustersStatus {
  readonly cluster_statuses?: readonly ClusterStatus[];
}

export interface ClusterStatus {
  readonly name: string;
  readonly added_via_api?: boolean;
  readonly host_statuses?: readonly Readonly<Record<string, unknown>>[];
  readonly [key: string]: unknown;
}

/** GET /ready: the server state. Envoy answers 503 while not LIVE, with the state in the body all the same. */
export async function getReady(adminUrl: string, opts: AdminRequestOptions = {}): Promise<string> {
  const res = await request(adminUrl, '/ready', 'GET', opts, [200, 503]);
  return (await res.text()).trim();
}

/** GET /config_dump as JSON. */
export async function getConfigDump(
  adminUrl: string,
  params: ConfigDumpParams = {},
  opts: AdminRequestOptions = {},
): Promise<ConfigDump> {
  const q = new URLSearchParams();
  if (params.resource !== undefined) q.set('resource', params.resource);
  if (params.mask !== undefined) q.set('mask', params.mask);
  if (params.nameRegex !== undefined) q.set('name_regex', params.nameRegex);
  if (params.includeEds === true) q.set('include_eds', '');
  const query = q.size > 0 ? `?${q.toString()}` : '';
  return json<ConfigDump>(await request(adminUrl, `/config_dump${query}`, 'GET', opts), '/config_dump');
}

/**
 * GET /stats: counters and gauges by name. `filter` is Envoy's regex filter on the name. Histograms (which
 * have no single value) are left out.
 */
export async function getStats(
  adminUrl: string,
  filter?: string,
  opts: AdminRequestOptions = {},
): Promise<Map<string, number>> {
  const query = filter === undefined ? '' : `?${new URLSearchParams({ filter }).toString()}`;
  const text = await (await request(adminUrl, `/stats${query}`, 'GET', opts)).text();
  return parseStats(text);
}

/** Parses /stats text (`name: value` per line) into a map, skipping histogram lines. */
export function parseStats(text: string): Map<string, number> {
  const stats = new Map<string, number>();
  for (const line of text.split('\n')) {
    // Names never contain ": " (Envoy sanitises them), values never start with a space.
    const sep = line.lastIndexOf(': ');
    if (sep <= 0) continue;
    const raw = line.slice(sep + 2).trim();
    if (!/^-?\d+(\.\d+)?$/.test(raw)) continue;
    stats.set(line.slice(0, sep), Number(raw));
  }
  return stats;
}

/** GET /server_info. */
export async function getServerInfo(adminUrl: string, opts: AdminRequestOptions = {}): Promise<ServerInfo> {
  return json<ServerInfo>(await request(adminUrl, '/server_info', 'GET', opts), '/server_info');
}

/** GET /clusters?format=json. */
export async function getClusters(adminUrl: string, opts: AdminRequestOptions = {}): Promise<ClustersStatus> {
  return json<ClustersStatus>(await request(adminUrl, '/clusters?format=json', 'GET', opts), '/clusters');
}

export interface DrainListenersOptions extends AdminRequestOptions {
  /** Drain over `--drain-time-s` (connections close gradually) instead of closing listeners at once. */
  readonly graceful?: boolean;
  /** Only inbound listeners (traffic_direction INBOUND). */
  readonly inboundOnly?: boolean;
}

/** POST /drain_listeners: stop accepting connections and drain the open ones. Envoy keeps running. */
export async function drainListeners(adminUrl: string, opts: DrainListenersOptions = {}): Promise<void> {
  // Envoy's flags are bare query keys (`?graceful&inboundonly`).
  const flags = [
    opts.graceful === true ? 'graceful' : '',
    opts.inboundOnly === true ? 'inboundonly' : '',
  ].filter((f) => f !== '');
  const query = flags.length > 0 ? `?${flags.join('&')}` : '';
  await (await request(adminUrl, `/drain_listeners${query}`, 'POST', opts)).text();
}

async function request(
  adminUrl: string,
  pathAndQuery: string,
  method: 'GET' | 'POST',
  opts: AdminRequestOptions,
  okStatuses: readonly number[] = [200],
): Promise<Response> {
  const url = `${adminUrl.replace(/\/+$/, '')}${pathAndQuery}`;
  let res: Response;
  try {
    res = await fetch(url, { method, signal: AbortSignal.timeout(opts.timeoutMs ?? 5000) });
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new AdminError('SKEIN_ENVOY_ADMIN_UNREACHABLE', `${method} ${url} failed: ${why}`, { cause: err });
  }
  if (!okStatuses.includes(res.status)) {
    const body = (await res.text().catch(() => '')).trim().slice(0, 500);
    throw new AdminError(
      'SKEIN_ENVOY_ADMIN_BAD_RESPONSE',
      `${method} ${url} answered ${res.status}${body === '' ? '' : `: ${body}`}`,
    );
  }
  return res;
}

async function json<T>(res: Response, what: string): Promise<T> {
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new AdminError(
      'SKEIN_ENVOY_ADMIN_BAD_RESPONSE',
      `${what} did not return JSON: ${text.slice(0, 200)}`,
      { cause: err },
    );
  }
}
