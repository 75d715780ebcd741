import type { Logger } from '../../log.js';
import { sleep } from './backoff.js';
import type { KubeApi, KubeObject } from './kubeClient.js';
import { errorMessage, KubeCode, statusOf } from './kubeCodes.js';
import type { KubeMetrics } from './kubeMetrics.js';
import { leaseResource, resourcePath } from './resources.js';

export interface LeaderElectorOptions {
  readonly api: KubeApi;
  readonly namespace: string;
  readonly name: string;
  /** This replica's holderIdentity; unique per process. */
  readonly identity: string;
  /** A Lease not renewed for this long may be taken. Default 15 s. */
  readonly leaseDurationMs?: number;
  /** The leader steps down if it could not renew for this long; < leaseDurationMs. Default 10 s. */
  readonly renewDeadlineMs?: number;
  /** Between attempts to acquire or renew; < renewDeadlineMs. Default 2 s. */
  readonly retryPeriodMs?: number;
  readonly logger: Logger;
  readonly metrics?: KubeMetrics;
  readonly onStartedLeading?: () => void;
  readonly onStoppedLeading?: () => void;
  /** The holder changed (to us, to another replica, or to nobody: ''). */
  readonly onNewLeader?: (identity: string) => void;
  /** Monotonic milliseconds; injected for tests. */
  readonly now?: () => number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Lease extends KubeObject {
  spec?: LeaseSpec;
}

export interface LeaderStatus {
  readonly lease: string;
  readonly identity: string;
  readonly isLeader: boolean;
  /** The holder last seen in the Lease ('' for none). */
  readonly holder: string;
  readonly transitions: number;
}

/** RFC 3339 with microseconds, the format of a MicroTime (acquireTime, renewTime). */
export function microTime(d: Date): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's: every retry period a
 * candidate reads the Lease and takes it if it is free or expired, the leader renews it, and all writes
 * carry the resourceVersion they read (a 409 means someone else wrote first). Expiry is judged by this
 * process's own clock, from when it last saw the Lease change, never by the times written in it, so
 * clock skew between nodes does not matter. The leader steps down when it has not renewed for
 * `renewDeadlineMs`, which is shorter than the lease duration: it stops writing before anyone else may
 * start. stop() releases the Lease so that the other replica takes over at its next retry.
 *
 * client-node 1.4 has no leader election helper, hence this one.
 */
export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #leaseMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryMs: number;
  readonly #now: () => number;
  readonly #stop = new AbortController();
  readonly #path: string;
  /**
   * Bound on each Lease request: a leader stuck in a request past its renew deadline would step down
   * late, so renew deadline + this stays below the lease duration.
   */
  readonly #requestMs: number;
  #running: Promise<void> | undefined;
  #isLeader = false;
  #holder = '';
  /** What we last saw in the Lease, and when (our clock). */
  #observed: { readonly key: string; readonly at: number } | undefined;
  #lastRenew = Number.NEGATIVE_INFINITY;
  #transitions = 0;
  #lastError: string | undefined;

  constructor(opts: LeaderElectorOptions) {
    this.#leaseMs = opts.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.#retryMs = opts.retryPeriodMs ?? 2_000;
    if (
      !(this.#retryMs > 0 && this.#retryMs < this.#renewDeadlineMs && this.#renewDeadlineMs < this.#leaseMs)
    ) {
      throw new RangeError(
        `Cannot elect a leader with lease duration ${this.#leaseMs} ms, renew deadline ${this.#renewDeadlineMs} ms and retry period ${this.#retryMs} ms: need 0 < retry period < renew deadline < lease duration`,
      );
    }
    if (opts.identity === '') throw new RangeError('Cannot elect a leader without an identity: it is empty');
    this.#o = opts;
    this.#now = opts.now ?? (() => performance.now());
    this.#path = resourcePath(leaseResource, { namespace: opts.namespace });
    this.#requestMs = Math.max(100, Math.min(this.#retryMs, (this.#leaseMs - this.#renewDeadlineMs) / 2));
  }

  get isLeader(): boolean {
    return this.#isLeader;
  }

  status(): LeaderStatus & { readonly lastError: string | undefined } {
    return {
      lease: `${this.#o.namespace}/${this.#o.name}`,
      identity: this.#o.identity,
      isLeader: this.#isLeader,
      holder: this.#holder,
      transitions: this.#transitions,
      lastError: this.#lastError,
    };
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** Stops trying; a leader steps down and releases the Lease. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
    if (this.#isLeader) {
      this.#stepDown('stopping', true);
      await this.#release();
    }
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const ok = await this.#tryAcquireOrRenew();
      if (signal.aborted) return;
      if (this.#isLeader && !ok && this.#now() - this.#lastRenew > this.#renewDeadlineMs) {
        this.#stepDown(`could not renew the Lease for ${this.#renewDeadlineMs} ms`);
      }
      // Candidates add jitter so that replicas started together do not keep colliding.
      const wait = this.#isLeader ? this.#retryMs : this.#retryMs * (1 + Math.random() * 0.2);
      await sleep(wait, signal);
    }
  }

  /** One attempt; true when we hold the Lease afterwards. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, name, identity } = this.#o;
    let lease: Lease | undefined;
    try {
      lease = await api.request<Lease>('GET', `${this.#path}/${encodeURIComponent(name)}`, {
        timeoutMs: this.#requestMs,
      });
    } catch (e) {
      if (statusOf(e) !== 404) return this.#failed('reading', e);
    }
    const nowMs = this.#now();
    const nowIso = microTime(new Date());
    const durationSeconds = Math.ceil(this.#leaseMs / 1000);
    if (lease === undefined) {
      try {
        await api.request('POST', this.#path, {
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace: this.#o.namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: nowIso,
              renewTime: nowIso,
              leaseTransitions: 0,
            },
          },
          timeoutMs: this.#requestMs,
        });
      } catch (e) {
        // 409: another replica created it first; it is the leader.
        return statusOf(e) === 409 ? false : this.#failed('creating', e);
      }
      this.#renewed(nowMs, identity);
      return true;
    }

    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ?? ''}|${lease.metadata?.resourceVersion ?? ''}`;
    if (this.#observed?.key !== key) this.#observed = { key, at: nowMs };
    this.#setHolder(holder);
    const theirDuration = (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (holder !== '' && holder !== identity && nowMs < (this.#observed?.at ?? nowMs) + theirDuration) {
      if (this.#isLeader) this.#stepDown(`the Lease is held by ${holder}`);
      return false;
    }
    const taking = holder !== identity;
    const next: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: nowIso,
        ...(taking
          ? { acquireTime: nowIso, leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === '' ? 0 : 1) }
          : {}),
      },
    };
    try {
      await api.request('PUT', `${this.#path}/${encodeURIComponent(name)}`, {
        body: next,
        timeoutMs: this.#requestMs,
      });
    } catch (e) {
      return statusOf(e) === 409 ? false : this.#failed(taking ? 'acquiring' : 'renewing', e);
    }
    this.#renewed(nowMs, identity);
    return true;
  }

  #renewed(at: number, identity: string): void {
    this.#lastRenew = at;
    this.#lastError = undefined;
    this.#setHolder(identity);
    if (!this.#isLeader) {
      this.#isLeader = true;
      this.#transitions++;
      this.#o.metrics?.leader.set({ lease: this.#o.name }, 1);
      this.#o.logger.info(
        { lease: `${this.#o.namespace}/${this.#o.name}`, identity },
        `became the leader (Lease ${this.#o.namespace}/${this.#o.name})`,
      );
      this.#o.onStartedLeading?.();
    }
  }

  #stepDown(why: string, graceful = false): void {
    if (!this.#isLeader) return;
    this.#isLeader = false;
    this.#o.metrics?.leader.set({ lease: this.#o.name }, 0);
    const lease = `${this.#o.namespace}/${this.#o.name}`;
    if (graceful) this.#o.logger.info({ lease }, `stepping down as the leader: ${why}`);
    else this.#o.logger.warn({ code: KubeCode.LeadershipLost, lease }, `no longer the leader: ${why}`);
    this.#o.onStoppedLeading?.();
  }

  #setHolder(holder: string): void {
    if (holder === this.#holder) return;
    this.#holder = holder;
    this.#o.onNewLeader?.(holder);
  }

  #failed(what: string, e: unknown): false {
    const message = errorMessage(e);
    if (this.#lastError !== message) {
      this.#o.logger.warn(
        { code: KubeCode.LeaseFailed, lease: `${this.#o.namespace}/${this.#o.name}`, err: message },
        `${what} the Lease ${this.#o.namespace}/${this.#o.name} failed: ${message}`,
      );
    }
    this.#lastError = message;
    return false;
  }

  /** Gives the Lease up: no holder, so the next candidate takes it without waiting for expiry. */
  async #release(): Promise<void> {
    const { api, name, identity } = this.#o;
    try {
      const lease = await api.request<Lease>('GET', `${this.#path}/${encodeURIComponent(name)}`, {
        timeoutMs: 5000,
      });
      if (lease.spec?.holderIdentity !== identity) return;
      const nowIso = microTime(new Date());
      await api.request('PUT', `${this.#path}/${encodeURIComponent(name)}`, {
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: nowIso },
        },
        timeoutMs: 5000,
      });
      this.#setHolder('');
      this.#o.logger.info(`released the Lease ${this.#o.namespace}/${this.#o.name}`);
    } catch (e) {
      this.#failed('releasing', e);
    }
  }
}
