import type { Logger } from '../../log.js';
import { Backoff, type BackoffOptions, sleep } from './backoff.js';
import type { KubeApi, KubeList, KubeObject, WatchEvent, WatchHandle } from './kubeClient.js';
import { errorMessage, KubeApiError, KubeCode, statusOf } from './kubeCodes.js';
import type { KubeMetrics } from './kubeMetrics.js';
import { apiVersionOf, type KubeResource, resourcePath } from './resources.js';

/** Where a reflector puts what it reads. */
export interface ReflectorSink {
  /** The whole state after a list: objects not in `items` are gone. */
  replace(items: readonly KubeObject[]): void;
  upsert(object: KubeObject): void;
  remove(object: KubeObject): void;
}

export interface ReflectorOptions {
  readonly api: KubeApi;
  readonly resource: KubeResource;
  /** Only this namespace; default all. */
  readonly namespace?: string;
  readonly fieldSelector?: string;
  readonly labelSelector?: string;
  readonly sink: ReflectorSink;
  readonly logger: Logger;
  readonly metrics?: KubeMetrics;
  /** Called once, after the first list (or after finding that the kind is not served). */
  readonly onSynced?: () => void;
  /** Between failed attempts. Default 200 ms doubling to 10 s. */
  readonly backoff?: BackoffOptions;
  /** Objects per list page. Default 500. */
  readonly pageSize?: number;
  /** How often to look again for a kind the API server does not serve. Default 60 s. */
  readonly missingRetryMs?: number;
  /** The server-side timeout of each watch, in seconds. Default: random in [300, 600), as client-go. */
  readonly watchTimeoutSeconds?: () => number;
}

export interface ReflectorStatus {
  readonly resource: string;
  readonly selector: string;
  readonly synced: boolean;
  /** The kind is not served (CRD not installed). */
  readonly missing: boolean;
  readonly resourceVersion: string | undefined;
  readonly lists: number;
  /** Watches the API server accepted. */
  readonly watches: number;
  readonly failures: number;
  /** Failures that were 403 Forbidden: missing RBAC, which no retry fixes (unlike a 429 or a restart). */
  readonly forbidden: number;
  readonly lastError: string | undefined;
}

interface WatchOutcome {
  readonly end: 'closed' | 'expired';
  /** Events (bookmarks included) the watch delivered. */
  readonly events: number;
  readonly ms: number;
}

/** A watch that ends this soon without an event is treated as a failure (no hot loop on a bad proxy). */
const SHORT_WATCH_MS = 1000;

/**
 * One list+watch loop (client-go's reflector, in small): list, then watch from the list's
 * resourceVersion with bookmarks, resume from the last version seen when a watch ends, list again after
 * 410 Gone (the sink's `replace` drops what disappeared meanwhile, so no update is lost), and after any
 * other failure retry with capped, jittered backoff. A watch that stays silent past its server-side
 * timeout is abandoned, so a half-open connection cannot stall the loop.
 *
 * client-node's ListWatch is not used: it stops for good on the first watch error (no reconnect, no
 * backoff), does not ask for bookmarks, and lists in one unpaged request.
 */
export class Reflector {
  readonly #o: ReflectorOptions;
  readonly #name: string;
  readonly #backoff: Backoff;
  readonly #stop = new AbortController();
  #running: Promise<void> | undefined;
  #watch: WatchHandle | undefined;
  #rv: string | undefined;
  #synced = false;
  #missing = false;
  #lists = 0;
  #watches = 0;
  #failures = 0;
  #forbidden = 0;
  #lastError: string | undefined;
  /** Failures since the last success, for the log (the backoff resets on its own schedule). */
  #failing = 0;

  constructor(opts: ReflectorOptions) {
    this.#o = opts;
    const r = opts.resource;
    this.#name = r.group === '' ? r.plural : `${r.plural}.${r.group}`;
    this.#backoff = new Backoff(opts.backoff ?? { initialMs: 200, maxMs: 10_000 });
  }

  get synced(): boolean {
    return this.#synced;
  }

  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#watch?.abort();
    await this.#running;
  }

  status(): ReflectorStatus {
    const sel = [
      this.#o.namespace === undefined ? '' : `namespace=${this.#o.namespace}`,
      this.#o.fieldSelector ?? '',
      this.#o.labelSelector ?? '',
    ].filter((s) => s !== '');
    return {
      resource: this.#name,
      selector: sel.join(','),
      synced: this.#synced,
      missing: this.#missing,
      resourceVersion: this.#rv,
      lists: this.#lists,
      watches: this.#watches,
      failures: this.#failures,
      forbidden: this.#forbidden,
      lastError: this.#lastError,
    };
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let listReason = 'initial';
    while (!signal.aborted) {
      try {
        if (this.#rv === undefined) {
          await this.#list(listReason);
          if (signal.aborted) return;
        }
        const outcome = await this.#watchOnce();
        if (outcome.end === 'expired') {
          this.#o.logger.info(
            { code: KubeCode.WatchExpired, resource: this.#name },
            `watch of ${this.#name} expired (410 Gone at resourceVersion ${this.#rv}): listing again`,
          );
          this.#rv = undefined;
          listReason = 'expired';
        } else if (outcome.events === 0 && outcome.ms < SHORT_WATCH_MS) {
          await sleep(this.#backoff.next(), signal);
        }
      } catch (err) {
        if (signal.aborted) return;
        const status = statusOf(err);
        if (status === 404 && this.#rv === undefined) {
          await this.#kindMissing(err);
          listReason = 'missing';
          continue;
        }
        if (status === 410) {
          // A list's continue token expired between pages: list again from the start, at once.
          this.#rv = undefined;
          listReason = 'expired';
          continue;
        }
        this.#failed(err);
        listReason = 'error';
        await sleep(this.#backoff.next(), signal);
      }
    }
  }

  #query(): Record<string, string | undefined> {
    return { fieldSelector: this.#o.fieldSelector, labelSelector: this.#o.labelSelector };
  }

  async #list(reason: string): Promise<void> {
    const { api, resource } = this.#o;
    const path = resourcePath(resource, { namespace: this.#o.namespace });
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    let pages = 0;
    do {
      const page: KubeList = await api.request<KubeList>('GET', path, {
        query: { ...this.#query(), limit: String(this.#o.pageSize ?? 500), continue: cont },
      });
      pages++;
      for (const item of page.items ?? []) {
        const o = this.#normalize(item);
        if (o !== undefined) items.push(o);
      }
      cont = page.metadata?.continue === '' ? undefined : page.metadata?.continue;
      rv = page.metadata?.resourceVersion;
    } while (cont !== undefined && pages < 100_000);
    if (this.#stop.signal.aborted) return;
    this.#lists++;
    this.#o.metrics?.lists.inc({ resource: this.#name, reason });
    if (this.#missing) {
      this.#o.logger.info({ resource: this.#name }, `${this.#name} is served now`);
      this.#missing = false;
    }
    this.#o.sink.replace(items);
    this.#rv = rv;
    this.#backoff.reset();
    this.#recovered();
    this.#markSynced();
  }

  async #kindMissing(err: unknown): Promise<void> {
    if (!this.#missing) {
      this.#o.logger.warn(
        { code: KubeCode.KindMissing, resource: this.#name },
        `the API server does not serve ${this.#name} (${errorMessage(err)}); treating it as empty and looking again every ${Math.round((this.#o.missingRetryMs ?? 60_000) / 1000)} s`,
      );
      this.#missing = true;
      this.#lists++;
      this.#o.metrics?.lists.inc({ resource: this.#name, reason: 'missing' });
      this.#o.sink.replace([]);
      this.#markSynced();
    }
    await sleep(this.#o.missingRetryMs ?? 60_000, this.#stop.signal);
  }

  #recovered(): void {
    if (this.#failing === 0) return;
    this.#o.logger.info(
      { resource: this.#name },
      `list/watch of ${this.#name} works again after ${this.#failing} failed attempt(s)`,
    );
    this.#failing = 0;
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#o.onSynced?.();
  }

  #failed(err: unknown): void {
    this.#failures++;
    this.#lastError = errorMessage(err);
    this.#o.metrics?.watchFailures.inc({ resource: this.#name });
    const code = statusOf(err) === 403 ? KubeCode.Forbidden : KubeCode.WatchFailed;
    if (code === KubeCode.Forbidden) this.#forbidden++;
    // The first failure of a streak is a warning; the retries that follow are debug lines, so an API
    // server that is down for a minute does not flood the log.
    const log = this.#failing === 0 ? this.#o.logger.warn : this.#o.logger.debug;
    this.#failing++;
    log.call(
      this.#o.logger,
      { code, resource: this.#name, err: this.#lastError },
      `list/watch of ${this.#name} failed: ${this.#lastError}; retrying with backoff`,
    );
  }

  /** One watch from #rv; resolves when it ends normally or expires, rejects on failure. */
  #watchOnce(): Promise<WatchOutcome> {
    const { api, resource } = this.#o;
    const timeoutSeconds = Math.max(
      1,
      Math.floor(this.#o.watchTimeoutSeconds?.() ?? 300 + Math.random() * 300),
    );
    const query: Record<string, string> = {
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeoutSeconds),
    };
    if (this.#rv !== undefined) query['resourceVersion'] = this.#rv;
    for (const [k, v] of Object.entries(this.#query())) if (v !== undefined) query[k] = v;
    const path = resourcePath(resource, { namespace: this.#o.namespace });
    const started = performance.now();
    let events = 0;
    const outcome = (end: WatchOutcome['end']): WatchOutcome => ({
      end,
      events,
      ms: performance.now() - started,
    });
    return new Promise<WatchOutcome>((resolve, reject) => {
      let expired = false;
      let errorEvent: KubeApiError | undefined;
      let settled = false;
      let watchdog: NodeJS.Timeout | undefined;
      const armWatchdog = (): void => {
        if (watchdog !== undefined) clearTimeout(watchdog);
        watchdog = setTimeout(
          () => {
            this.#watch?.abort();
            finish(
              new KubeApiError(
                0,
                undefined,
                `watch of ${this.#name} was silent for over ${timeoutSeconds + 60} s`,
              ),
            );
          },
          (timeoutSeconds + 60) * 1000,
        );
      };
      const finish = (err: unknown): void => {
        if (settled) return;
        settled = true;
        if (watchdog !== undefined) clearTimeout(watchdog);
        this.#stop.signal.removeEventListener('abort', onStop);
        this.#watch = undefined;
        if (err !== null && err !== undefined) {
          if (statusOf(err) === 410) resolve(outcome('expired'));
          else reject(err);
        } else if (expired) resolve(outcome('expired'));
        else if (errorEvent !== undefined) reject(errorEvent);
        else resolve(outcome('closed'));
      };
      const onEvent = (e: WatchEvent): void => {
        armWatchdog();
        events++;
        this.#o.metrics?.events.inc({ resource: this.#name, type: e.type });
        if (e.type === 'ERROR') {
          const s = e.object as { code?: number; reason?: string; message?: string };
          if (s.code === 410) expired = true;
          else
            errorEvent = new KubeApiError(
              s.code ?? 0,
              s.reason,
              `watch of ${this.#name}: ${s.message ?? 'error event'}`,
            );
          return;
        }
        const rv = e.object.metadata?.resourceVersion;
        if (e.type === 'BOOKMARK') {
          if (rv !== undefined) this.#rv = rv;
          return;
        }
        const o = this.#normalize(e.object);
        if (o === undefined) return;
        if (e.type === 'DELETED') this.#o.sink.remove(o);
        else this.#o.sink.upsert(o);
        if (rv !== undefined) this.#rv = rv;
        // A watch that delivers is a healthy connection: the next failure starts from a short delay.
        this.#backoff.reset();
      };
      armWatchdog();
      // stop() aborts the watch, after which its done callback never comes: settle here instead.
      const onStop = (): void => {
        this.#watch?.abort();
        finish(null);
      };
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
      api.watch(path, query, onEvent, finish).then(
        (handle) => {
          // Watch.watch() also resolves after a failed connect (it has called done first).
          if (settled) return;
          this.#watches++;
          this.#watch = handle;
          this.#recovered();
          if (this.#stop.signal.aborted) {
            handle.abort();
            finish(null);
          }
        },
        (err: unknown) => finish(err),
      );
    });
  }

  /** Fills in apiVersion and kind (list items of built-in kinds lack them); refuses nameless objects. */
  #normalize(o: KubeObject): KubeObject | undefined {
    if (typeof o !== 'object' || o === null || typeof o.metadata?.name !== 'string') {
      this.#o.logger.warn(
        { code: KubeCode.BadObject, resource: this.#name },
        `skipping a ${this.#o.resource.kind} without metadata.name from the API server`,
      );
      return undefined;
    }
    const { managedFields: _dropped, ...metadata } = o.metadata;
    return { ...o, apiVersion: apiVersionOf(this.#o.resource), kind: this.#o.resource.kind, metadata };
  }
}
