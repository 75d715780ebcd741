import type { Namespace } from '../sources/objects.js';

/** The label the API server puts on every namespace (since Kubernetes 1.22). */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/**
 * The labels of namespaces, for allowedRoutes `from: Selector`. A namespace the source declares (a
 * Namespace object) has its own labels plus `kubernetes.io/metadata.name`, which the API server always
 * sets; one it does not declare (standalone mode rarely declares them) has only that label.
 */
export class NamespaceIndex {
  readonly #labels = new Map<string, Readonly<Record<string, string>>>();

  constructor(namespaces: readonly Namespace[]) {
    for (const ns of namespaces) {
      const name = ns.metadata?.name;
      if (name === undefined) continue;
      this.#labels.set(name, { ...(ns.metadata?.labels ?? {}), [NAMESPACE_NAME_LABEL]: name });
    }
  }

  labels(namespace: string): Readonly<Record<string, string>> {
    return this.#labels.get(namespace) ?? { [NAMESPACE_NAME_LABEL]: namespace };
  }
}
