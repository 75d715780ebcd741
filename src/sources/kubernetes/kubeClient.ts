import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { type KubeConfig, Watch } from '@kubernetes/client-node';
import { errorMessage, KubeApiError, KubeCode } from './kubeCodes.js';

/** An object as the API server sends it: plain JSON, timestamps as strings. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: KubeMetadata;
  [field: string]: unknown;
}

export interface KubeMetadata {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  generation?: number;
  uid?: string;
  [field: string]: unknown;
}

export interface KubeList {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: KubeObject[];
}

/** One line of a watch stream. */
export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR' | string;
  readonly object: KubeObject;
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly body?: unknown;
  /** Default application/json. */
  readonly contentType?: string;
  /** Default 30 s. */
  readonly timeoutMs?: number;
}

/** A running watch; `abort()` ends it (its `done` is then not called). */
export interface WatchHandle {
  abort(): void;
}

export interface KubeApi {
  readonly server: string;
  request<T = KubeObject>(method: string, path: string, opts?: RequestOptions): Promise<T>;
  watch(
    path: string,
    query: Readonly<Record<string, string>>,
    onEvent: (event: WatchEvent) => void,
    done: (err: unknown) => void,
  ): Promise<WatchHandle>;
}

/**
 * Talks JSON to the API server with the authentication and TLS of a client-node KubeConfig (tokens,
 * client certificates and exec plugins are applied per request, so rotated credentials are picked up).
 *
 * Requests are made here rather than through client-node's typed API classes because those turn every
 * timestamp into a Date: a status read back would no longer equal the one written (`...:05Z` becomes
 * `...:05.000Z`), and the translators expect objects exactly as the API server and the YAML source give
 * them. Watches use client-node's Watch.
 */
export class KubeClient implements KubeApi {
  readonly #kc: KubeConfig;
  readonly #watch: Watch;
  readonly server: string;
  /** Keep-alive agents by TLS material, so writes reuse connections instead of handshaking each time. */
  readonly #agents = new Map<string, https.Agent>();

  constructor(kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (cluster === null) {
      throw new KubeApiError(0, undefined, 'the kubeconfig has no current cluster', {
        code: KubeCode.Config,
      });
    }
    this.#kc = kc;
    this.#watch = new Watch(kc);
    this.server = cluster.server.replace(/\/+$/, '');
  }

  async request<T = KubeObject>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, v);
    const options: https.RequestOptions = { method, headers: { accept: 'application/json' } };
    await this.#kc.applyToHTTPSOptions(options);
    const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
    const headers: http.OutgoingHttpHeaders = { ...(options.headers as http.OutgoingHttpHeaders) };
    if (body !== undefined) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = Buffer.byteLength(body);
    }
    const secure = url.protocol === 'https:';
    const requestOptions: https.RequestOptions = {
      method,
      headers,
      ...(options.auth === undefined ? {} : { auth: options.auth }),
      agent: secure ? this.#agentFor(options) : undefined,
      timeout: opts.timeoutMs ?? 30_000,
    };
    const what = `${method} ${url.pathname}`;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (secure ? https : http).request(url, requestOptions, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`timed out after ${opts.timeoutMs ?? 30_000} ms`)));
      req.on('error', reject);
      req.end(body);
    }).catch((err: unknown) => {
      throw new KubeApiError(0, undefined, `${what}: ${errorMessage(err)}`, { cause: err });
    });
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (status < 200 || status > 299) {
      const s = (parsed ?? {}) as { reason?: string; message?: string };
      throw new KubeApiError(
        status,
        s.reason,
        `${what}: ${status} ${s.reason ?? ''}${s.message !== undefined ? `: ${s.message}` : ''}`.trim(),
      );
    }
    return parsed as T;
  }

  async watch(
    path: string,
    query: Readonly<Record<string, string>>,
    onEvent: (event: WatchEvent) => void,
    done: (err: unknown) => void,
  ): Promise<WatchHandle> {
    let aborted = false;
    const controller = await this.#watch.watch(
      path,
      query,
      (type: string, object: unknown) => {
        if (!aborted) onEvent({ type, object: (object ?? {}) as KubeObject });
      },
      (err: unknown) => {
        if (aborted) return;
        aborted = true;
        const status = (err as { statusCode?: unknown } | null)?.statusCode;
        done(
          err === null || err === undefined
            ? null
            : typeof status === 'number'
              ? new KubeApiError(status, undefined, `watch ${path}: ${status} ${errorMessage(err)}`)
              : new KubeApiError(0, undefined, `watch ${path}: ${errorMessage(err)}`, { cause: err }),
        );
      },
    );
    return {
      abort() {
        aborted = true;
        controller.abort();
      },
    };
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
  }

  #agentFor(o: https.RequestOptions): https.Agent {
    const key = createHash('sha256')
      .update(JSON.stringify([o.ca, o.cert, o.key, o.pfx, o.rejectUnauthorized, o.servername]))
      .digest('hex');
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      agent = new https.Agent({
        keepAlive: true,
        maxSockets: 8,
        ...(o.ca === undefined ? {} : { ca: o.ca }),
        ...(o.cert === undefined ? {} : { cert: o.cert }),
        ...(o.key === undefined ? {} : { key: o.key }),
        ...(o.pfx === undefined ? {} : { pfx: o.pfx }),
        ...(o.passphrase === undefined ? {} : { passphrase: o.passphrase }),
        ...(o.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: o.rejectUnauthorized }),
        ...(o.servername === undefined ? {} : { servername: o.servername }),
      });
      this.#agents.set(key, agent);
    }
    return agent;
  }
}
