import type { Logger } from '../../log.js';
import type { KubeApi } from './kubeClient.js';
import type { KubeMetrics } from './kubeMetrics.js';
import type { ObjectStore } from './objectStore.js';
import { Reflector, type ReflectorStatus } from './reflector.js';
import type { KubeResource } from './resources.js';

export interface NamedWatchesOptions {
  readonly api: KubeApi;
  readonly resource: KubeResource;
  readonly store: ObjectStore;
  readonly logger: Logger;
  readonly metrics?: KubeMetrics;
  /** A watch started by setWanted() has listed its object (found or not). */
  readonly onSynced: () => void;
}

/**
 * One watch per wanted object, by name (`fieldSelector=metadata.name=…` in its namespace): how Skein
 * reads Secrets and ConfigMaps without ever listing them all. setWanted() starts the watches for new
 * names and stops (and forgets the objects of) names no longer wanted.
 */
export class NamedWatches {
  readonly #o: NamedWatchesOptions;
  readonly #watches = new Map<string, Reflector>();

  constructor(opts: NamedWatchesOptions) {
    this.#o = opts;
  }

  /** `namespace/name` keys. */
  setWanted(keys: ReadonlySet<string>): void {
    const { resource, store } = this.#o;
    for (const [key, r] of this.#watches) {
      if (keys.has(key)) continue;
      this.#watches.delete(key);
      void r.stop();
      store.delete(resource.kind, key);
    }
    for (const key of keys) {
      if (this.#watches.has(key)) continue;
      const slash = key.indexOf('/');
      const namespace = key.slice(0, slash);
      const name = key.slice(slash + 1);
      const r = new Reflector({
        api: this.#o.api,
        resource,
        namespace,
        fieldSelector: `metadata.name=${name}`,
        sink: store.sink(resource.kind, (k) => k === key),
        logger: this.#o.logger,
        ...(this.#o.metrics === undefined ? {} : { metrics: this.#o.metrics }),
        onSynced: this.#o.onSynced,
      });
      this.#watches.set(key, r);
      r.start();
    }
  }

  /** True while a wanted object has not been listed yet. */
  get pending(): boolean {
    for (const r of this.#watches.values()) if (!r.synced) return true;
    return false;
  }

  get size(): number {
    return this.#watches.size;
  }

  status(): ReflectorStatus[] {
    return [...this.#watches.values()].map((r) => r.status());
  }

  async stop(): Promise<void> {
    const all = [...this.#watches.values()];
    this.#watches.clear();
    await Promise.all(all.map((r) => r.stop()));
  }
}
