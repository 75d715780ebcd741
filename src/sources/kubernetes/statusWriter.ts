import { DEFAULT_CONTROLLER_NAME } from '../../gateway/translate.js';
import type { Logger } from '../../log.js';
import { type KnownKind, knownKinds, type ObjectStatus, objectKey } from '../objects.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import type { KubeApi, KubeObject } from './kubeClient.js';
import { errorMessage, KubeCode, statusOf } from './kubeCodes.js';
import type { KubeMetrics } from './kubeMetrics.js';
import type { ObjectStore } from './objectStore.js';
import { inputResource, resourcePath } from './resources.js';
import { canonical, ROUTE_KINDS, statusToWrite } from './statusMerge.js';

export interface StatusWriterOptions {
  readonly api: KubeApi;
  /** Where the objects' current status comes from (the operator's informers). */
  readonly store: Pick<ObjectStore, 'get' | 'list'>;
  readonly logger: Logger;
  readonly metrics?: KubeMetrics;
  /** Asked right before every write: only the leader writes. */
  readonly isLeader: () => boolean;
  readonly gatewayController?: string;
  /** At most one write per object this often. Default 500 ms. */
  readonly minIntervalMs?: number;
  /** Between failed writes of one object. Default 0.5 s doubling to 30 s. */
  readonly backoff?: BackoffOptions;
  /** Re-read and re-apply on 409 at most this often per write. Default 5. */
  readonly maxConflicts?: number;
  readonly fieldManager?: string;
}

export interface StatusWriterStatus {
  readonly active: boolean;
  readonly written: number;
  readonly conflicts: number;
  readonly failures: number;
  /** Objects with a write waiting (rate limit or backoff) or in flight. */
  readonly pending: number;
  readonly lastError: string | undefined;
}

interface Target {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  timer: NodeJS.Timeout | undefined;
  inFlight: boolean;
  /** Something changed while a write was in flight: check again when it ends. */
  dirty: boolean;
  lastWriteAt: number;
  readonly backoff: Backoff;
  /** The last write: the status sent and the status the server stored (its defaults applied). */
  memo: { readonly sent: string; readonly stored: string } | undefined;
  /** The object the last write returned, until the informer has caught up with it. */
  written: KubeObject | undefined;
}

/**
 * Writes the statuses the translators computed to the API server, through the status subresource:
 * only what differs from the server (statusMerge.ts), with the resourceVersion it was computed from
 * (409: read again, apply again), at most one write per object per `minIntervalMs`, failures retried
 * with backoff and logged with the object. Only while `isLeader()`.
 */
export class StatusWriter {
  readonly #o: StatusWriterOptions;
  readonly #controller: string;
  readonly #minInterval: number;
  readonly #targets = new Map<string, Target>();
  #desired = new Map<string, ObjectStatus>();
  #active = false;
  #stopped = false;
  #written = 0;
  #conflicts = 0;
  #failures = 0;
  #lastError: string | undefined;
  #idleWaiters: (() => void)[] = [];

  constructor(opts: StatusWriterOptions) {
    this.#o = opts;
    this.#controller = opts.gatewayController ?? DEFAULT_CONTROLLER_NAME;
    this.#minInterval = opts.minIntervalMs ?? 500;
  }

  /** The statuses of a build. Objects that no longer get one lose Skein's route/policy entries. */
  update(statuses: readonly ObjectStatus[]): void {
    const desired = new Map<string, ObjectStatus>();
    for (const s of statuses) desired.set(objectKey(s.kind, s.namespace, s.name), s);
    const before = this.#desired;
    this.#desired = desired;
    if (!this.#active) return;
    for (const [key, s] of desired) if (before.get(key) !== s) this.#check(key, s.kind, s.namespace, s.name);
    for (const [key, s] of before) if (!desired.has(key)) this.#check(key, s.kind, s.namespace, s.name);
  }

  /** The object's status changed on the server (someone else wrote it, or our write came back). */
  recheck(kind: string, namespace: string, name: string): void {
    if (!this.#active) return;
    const key = objectKey(kind, namespace, name);
    if (this.#desired.has(key) || this.#targets.has(key) || this.#hasOurEntries(kind, namespace, name)) {
      this.#check(key, kind, namespace, name);
    }
  }

  /** Leadership: when it starts, every object is compared with the server once. */
  setActive(active: boolean): void {
    if (this.#active === active) return;
    this.#active = active;
    if (!active) {
      for (const t of this.#targets.values()) {
        if (t.timer !== undefined) clearTimeout(t.timer);
        t.timer = undefined;
      }
      this.#notifyIdle();
      return;
    }
    for (const [key, s] of this.#desired) this.#check(key, s.kind, s.namespace, s.name);
    // Routes and policies that still carry Skein's entries but no longer get a status.
    for (const kind of [...ROUTE_KINDS, 'BackendTLSPolicy']) {
      for (const o of this.#o.store.list(kind)) {
        const ns = o.metadata?.namespace ?? '';
        const name = o.metadata?.name ?? '';
        const key = objectKey(kind, ns, name);
        if (!this.#desired.has(key) && this.#hasOurEntries(kind, ns, name)) this.#check(key, kind, ns, name);
      }
    }
  }

  get active(): boolean {
    return this.#active;
  }

  status(): StatusWriterStatus {
    let pending = 0;
    for (const t of this.#targets.values()) if (t.timer !== undefined || t.inFlight) pending++;
    return {
      active: this.#active,
      written: this.#written,
      conflicts: this.#conflicts,
      failures: this.#failures,
      pending,
      lastError: this.#lastError,
    };
  }

  /** Resolves once no write is waiting or in flight (tests, shutdown). */
  idle(): Promise<void> {
    if (this.status().pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  stop(): void {
    this.#stopped = true;
    this.setActive(false);
  }

  #hasOurEntries(kind: string, namespace: string, name: string): boolean {
    const list = kind === 'BackendTLSPolicy' ? 'ancestors' : ROUTE_KINDS.has(kind) ? 'parents' : undefined;
    if (list === undefined) return false;
    const status = this.#o.store.get(kind, namespace, name)?.['status'] as
      | Record<string, unknown>
      | undefined;
    const entries = status?.[list];
    return (
      Array.isArray(entries) &&
      entries.some((e) => (e as Record<string, unknown> | null)?.['controllerName'] === this.#controller)
    );
  }

  #target(key: string, kind: string, namespace: string, name: string): Target {
    let t = this.#targets.get(key);
    if (t === undefined) {
      t = {
        kind,
        namespace,
        name,
        timer: undefined,
        inFlight: false,
        dirty: false,
        lastWriteAt: Number.NEGATIVE_INFINITY,
        backoff: new Backoff(this.#o.backoff ?? { initialMs: 500, maxMs: 30_000 }),
        memo: undefined,
        written: undefined,
      };
      this.#targets.set(key, t);
    }
    return t;
  }

  /** The freshest copy of the object: the informer's, or the one our last write returned if newer. */
  #current(t: Target): KubeObject | undefined {
    const stored = this.#o.store.get(t.kind, t.namespace, t.name);
    if (t.written === undefined) return stored;
    if (stored === undefined) return t.written;
    if (!newer(t.written, stored)) {
      t.written = undefined;
      return stored;
    }
    return t.written;
  }

  /** What to write on `current`, or undefined if nothing (including: it is what we wrote last). */
  #next(t: Target, key: string, current: KubeObject): Record<string, unknown> | undefined {
    const next = statusToWrite(t.kind, current, this.#desired.get(key), this.#controller);
    if (next === undefined) return undefined;
    // The server may store what we sent with its defaults filled in; that is not a difference.
    if (
      t.memo !== undefined &&
      t.memo.sent === canonical(next) &&
      t.memo.stored === canonical(current['status'] ?? {})
    )
      return undefined;
    return next;
  }

  #check(key: string, kind: string, namespace: string, name: string): void {
    if (!this.#active || this.#stopped || !(kind in knownKinds)) return;
    const t = this.#target(key, kind, namespace, name);
    if (t.inFlight) {
      t.dirty = true;
      return;
    }
    if (t.timer !== undefined) return;
    const current = this.#current(t);
    if (current === undefined || this.#next(t, key, current) === undefined) {
      if (!this.#desired.has(key) && t.memo === undefined) this.#targets.delete(key);
      return;
    }
    const wait = Math.max(0, t.lastWriteAt + this.#minInterval - performance.now());
    t.timer = setTimeout(() => void this.#run(key, t), wait);
  }

  async #run(key: string, t: Target): Promise<void> {
    t.timer = undefined;
    if (!this.#active || this.#stopped) return;
    t.inFlight = true;
    let retryIn: number | undefined;
    try {
      await this.#write(key, t);
      t.backoff.reset();
    } catch (e) {
      this.#failures++;
      this.#lastError = `${objectKey(t.kind, t.namespace, t.name)}: ${errorMessage(e)}`;
      this.#o.metrics?.statusWrites.inc({ kind: t.kind, result: 'failed' });
      retryIn = t.backoff.next();
      this.#o.logger.warn(
        {
          code: KubeCode.StatusWriteFailed,
          object: objectKey(t.kind, t.namespace, t.name),
          err: errorMessage(e),
        },
        `writing the status of ${t.kind} ${t.namespace === '' ? '' : `${t.namespace}/`}${t.name} failed: ${errorMessage(e)}; retrying in ${Math.round(retryIn)} ms`,
      );
    } finally {
      t.inFlight = false;
    }
    if (retryIn !== undefined && this.#active && !this.#stopped) {
      t.dirty = false;
      t.timer = setTimeout(() => void this.#run(key, t), retryIn);
    } else if (t.dirty) {
      t.dirty = false;
      this.#check(key, t.kind, t.namespace, t.name);
    }
    this.#notifyIdle();
  }

  async #write(key: string, t: Target): Promise<void> {
    const resource = inputResource(t.kind as KnownKind);
    const path = resourcePath(resource, { namespace: t.namespace, name: t.name, subresource: 'status' });
    let current = this.#current(t);
    const maxConflicts = this.#o.maxConflicts ?? 5;
    for (let attempt = 0; current !== undefined; attempt++) {
      const next = this.#next(t, key, current);
      if (next === undefined) return;
      if (!this.#o.isLeader()) return;
      try {
        const stored = await this.#o.api.request<KubeObject>('PUT', path, {
          body: { ...current, status: next },
          query: { fieldManager: this.#o.fieldManager ?? 'skein-operator' },
        });
        t.lastWriteAt = performance.now();
        t.memo = { sent: canonical(next), stored: canonical(stored['status'] ?? {}) };
        t.written = stored;
        this.#written++;
        this.#o.metrics?.statusWrites.inc({ kind: t.kind, result: 'written' });
        this.#o.logger.debug(
          {
            object: objectKey(t.kind, t.namespace, t.name),
            resourceVersion: stored.metadata?.resourceVersion,
          },
          'status written',
        );
        return;
      } catch (e) {
        const status = statusOf(e);
        if (status === 404) {
          this.#o.metrics?.statusWrites.inc({ kind: t.kind, result: 'gone' });
          return;
        }
        if (status !== 409 || attempt >= maxConflicts) throw e;
        this.#conflicts++;
        this.#o.metrics?.statusWrites.inc({ kind: t.kind, result: 'conflict' });
        // Someone changed the object since we read it: read it again (through the status subresource,
        // which the writer's RBAC allows) and apply the change to what is there now.
        current = await this.#o.api.request<KubeObject>('GET', path);
        t.written = current;
      }
    }
  }

  #notifyIdle(): void {
    if (this.#idleWaiters.length === 0 || this.status().pending > 0) return;
    for (const w of this.#idleWaiters.splice(0)) w();
  }
}

/** True when `a` is a later version of the object than `b` (resourceVersions are etcd revisions). */
function newer(a: KubeObject, b: KubeObject): boolean {
  const ra = a.metadata?.resourceVersion;
  const rb = b.metadata?.resourceVersion;
  if (ra === undefined || rb === undefined || !/^\d+$/.test(ra) || !/^\d+$/.test(rb)) return false;
  return BigInt(ra) > BigInt(rb);
}
