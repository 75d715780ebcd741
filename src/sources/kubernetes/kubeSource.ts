import type { Logger } from '../../log.js';
import type { ObjectSet } from '../objects.js';
import type { BackoffOptions } from './backoff.js';
import { Coalescer } from './coalescer.js';
import type { KubeApi } from './kubeClient.js';
import { errorMessage } from './kubeCodes.js';
import type { KubeMetrics } from './kubeMetrics.js';
import { NamedWatches } from './namedWatches.js';
import { ObjectStore } from './objectStore.js';
import { referencedObjects } from './referencedObjects.js';
import { Reflector, type ReflectorStatus } from './reflector.js';
import { inputResource, inputResources, type KubeResource, nodeResources } from './resources.js';

/** Hold-off and maximum delay of the coalescer (docs/kubernetes.md). */
export const DEFAULT_HOLD_OFF_MS = 10;
export const DEFAULT_MAX_DELAY_MS = 100;
/** How long a build waits for newly referenced Secrets and ConfigMaps to be listed. */
export const DEFAULT_REFERENCED_SYNC_MS = 2000;

export interface KubeSourceOptions {
  readonly api: KubeApi;
  readonly logger: Logger;
  readonly metrics?: KubeMetrics;
  /**
   * The agent's node: its Pods (`spec.nodeName`), its Node and every NetworkPolicy are read too, for the
   * datapath and policy. Without it (the operator) only translator inputs are read.
   */
  readonly nodeName?: string;
  /**
   * Read namespaced kinds in this namespace only (cluster-scoped kinds are read whole). For trying
   * Skein on a shared cluster, and for tests that share one API server.
   */
  readonly namespace?: string;
  /** The controller names the translators answer to, to know which objects' Secrets to read. */
  readonly controllers?: { readonly gateway?: string; readonly ingress?: string };
  /** A new ObjectSet, after coalescing; the first one once every informer has synced. */
  readonly onChange: (objects: ObjectSet) => void;
  /** Only the status (or resourceVersion) of an object changed. */
  readonly onRawChange?: (kind: string, key: string) => void;
  readonly holdOffMs?: number;
  readonly maxDelayMs?: number;
  readonly referencedSyncMs?: number;
  /** For tests: faster retries. */
  readonly backoff?: BackoffOptions;
}

export interface KubeSourceStatus {
  readonly synced: boolean;
  readonly builds: number;
  readonly events: number;
  readonly objects: Readonly<Record<string, number>>;
  readonly informers: readonly ReflectorStatus[];
  readonly byName: readonly ReflectorStatus[];
}

/**
 * Kubernetes as a source: one list+watch per kind (Reflector) into one ObjectStore, Secrets and
 * ConfigMaps read by name as the objects name them (NamedWatches), and a Coalescer between the watch
 * events and the builds. It hands ObjectSets to `onChange`, the same ones the file source produces.
 */
export class KubeSource {
  readonly store: ObjectStore;
  readonly synced: Promise<void>;
  readonly #o: KubeSourceOptions;
  readonly #reflectors: Reflector[] = [];
  readonly #secrets: NamedWatches;
  readonly #configMaps: NamedWatches;
  readonly #coalescer: Coalescer;
  #resolveSynced: () => void = () => {};
  #isSynced = false;
  #pendingSince: number | undefined;
  #pendingTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(opts: KubeSourceOptions) {
    this.#o = opts;
    this.synced = new Promise((resolve) => {
      this.#resolveSynced = resolve;
    });
    // What a build reads: the translators' kinds, and on an agent the datapath's.
    const translated = new Set<string>([
      ...inputResources.map((r) => r.kind),
      ...(opts.nodeName === undefined ? [] : Object.values(nodeResources).map((r) => r.kind)),
    ]);
    this.store = new ObjectStore({
      onChange: (kind) => {
        if (translated.has(kind)) this.#coalescer.notify();
      },
      ...(opts.onRawChange === undefined ? {} : { onRawChange: opts.onRawChange }),
    });
    this.#coalescer = new Coalescer({
      holdOffMs: opts.holdOffMs ?? DEFAULT_HOLD_OFF_MS,
      maxDelayMs: opts.maxDelayMs ?? DEFAULT_MAX_DELAY_MS,
      flush: () => this.#flush(),
    });
    const common = {
      api: opts.api,
      logger: opts.logger,
      ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
      ...(opts.backoff === undefined ? {} : { backoff: opts.backoff }),
    };
    const named = (kind: 'Secret' | 'ConfigMap') =>
      new NamedWatches({
        ...common,
        resource: inputResource(kind),
        store: this.store,
        onSynced: () => this.#coalescer.notify(),
      });
    this.#secrets = named('Secret');
    this.#configMaps = named('ConfigMap');

    const add = (resource: KubeResource, selector: { fieldSelector?: string } = {}): void => {
      this.#reflectors.push(
        new Reflector({
          ...common,
          ...selector,
          ...(resource.namespaced && opts.namespace !== undefined ? { namespace: opts.namespace } : {}),
          resource,
          sink: this.store.sink(resource.kind),
          onSynced: () => this.#checkSynced(),
        }),
      );
    };
    for (const r of inputResources) if (r.kind !== 'Secret' && r.kind !== 'ConfigMap') add(r);
    if (opts.nodeName !== undefined) {
      add(nodeResources.Pod, { fieldSelector: `spec.nodeName=${opts.nodeName}` });
      add(nodeResources.Node, { fieldSelector: `metadata.name=${opts.nodeName}` });
      add(nodeResources.NetworkPolicy);
    }
  }

  get isSynced(): boolean {
    return this.#isSynced;
  }

  start(): void {
    for (const r of this.#reflectors) r.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#coalescer.stop();
    if (this.#pendingTimer !== undefined) clearTimeout(this.#pendingTimer);
    await Promise.all([
      ...this.#reflectors.map((r) => r.stop()),
      this.#secrets.stop(),
      this.#configMaps.stop(),
    ]);
  }

  status(): KubeSourceStatus {
    const objects: Record<string, number> = {};
    for (const r of [...inputResources, ...Object.values(nodeResources)])
      objects[r.kind] = this.store.count(r.kind);
    const { flushes, events } = this.#coalescer.stats;
    return {
      synced: this.#isSynced,
      builds: flushes,
      events,
      objects,
      informers: this.#reflectors.map((r) => r.status()),
      byName: [...this.#secrets.status(), ...this.#configMaps.status()],
    };
  }

  #checkSynced(): void {
    if (this.#isSynced || !this.#reflectors.every((r) => r.synced)) return;
    this.#isSynced = true;
    this.#o.logger.info(`every informer has synced (${this.#reflectors.length} kinds)`);
    this.#resolveSynced();
    this.#coalescer.open();
  }

  #flush(): void {
    if (this.#stopped) return;
    const objects = this.store.snapshot();
    const refs = referencedObjects(objects, this.#o.controllers);
    this.#secrets.setWanted(refs.secrets);
    this.#configMaps.setWanted(refs.configMaps);
    if (this.#secrets.pending || this.#configMaps.pending) {
      // A Gateway that just named a Secret would otherwise be reported as missing its certificate until
      // the Secret arrives a moment later. Their watches notify when listed; the timer bounds the wait.
      const now = performance.now();
      this.#pendingSince ??= now;
      const limit = this.#o.referencedSyncMs ?? DEFAULT_REFERENCED_SYNC_MS;
      if (now - this.#pendingSince < limit) {
        this.#pendingTimer ??= setTimeout(
          () => {
            this.#pendingTimer = undefined;
            this.#coalescer.notify();
          },
          limit - (now - this.#pendingSince),
        );
        return;
      }
    }
    this.#pendingSince = undefined;
    if (this.#pendingTimer !== undefined) clearTimeout(this.#pendingTimer);
    this.#pendingTimer = undefined;
    try {
      this.#o.onChange(objects);
    } catch (e) {
      this.#o.logger.error(
        { err: errorMessage(e) },
        `a build from the Kubernetes objects failed: ${errorMessage(e)}`,
      );
    }
  }
}
