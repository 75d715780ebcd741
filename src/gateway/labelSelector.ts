/** A Kubernetes label selector (metav1.LabelSelector), as listeners use it to pick route namespaces. */
export interface LabelSelector {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: readonly {
    readonly key: string;
    readonly operator: string;
    readonly values?: readonly string[];
  }[];
}

export type CompiledSelector =
  | { readonly ok: true; readonly matches: (labels: Readonly<Record<string, string>>) => boolean }
  | { readonly ok: false; readonly problem: string };

/**
 * Compiles a selector, checking what the API server checks for label selectors in built-in types (the
 * CRD schema leaves `operator` a free string, so a bad one reaches us and becomes a listener condition).
 * All requirements are ANDed; an empty selector matches everything.
 */
export function compileSelector(selector: LabelSelector): CompiledSelector {
  const tests: ((labels: Readonly<Record<string, string>>) => boolean)[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    tests.push((labels) => labels[key] === value);
  }
  for (const [i, e] of (selector.matchExpressions ?? []).entries()) {
    const values = e.values ?? [];
    switch (e.operator) {
      case 'In':
      case 'NotIn': {
        if (values.length === 0)
          return { ok: false, problem: `matchExpressions[${i}]: operator ${e.operator} needs values` };
        const set = new Set(values);
        const inSet = (labels: Readonly<Record<string, string>>): boolean =>
          Object.hasOwn(labels, e.key) && set.has(labels[e.key] as string);
        tests.push(e.operator === 'In' ? inSet : (labels) => !inSet(labels));
        break;
      }
      case 'Exists':
      case 'DoesNotExist': {
        if (values.length > 0)
          return { ok: false, problem: `matchExpressions[${i}]: operator ${e.operator} takes no values` };
        tests.push(
          e.operator === 'Exists'
            ? (labels) => Object.hasOwn(labels, e.key)
            : (labels) => !Object.hasOwn(labels, e.key),
        );
        break;
      }
      default:
        return {
          ok: false,
          problem: `matchExpressions[${i}]: operator "${e.operator}" is not In, NotIn, Exists or DoesNotExist`,
        };
    }
  }
  return { ok: true, matches: (labels) => tests.every((t) => t(labels)) };
}

/**
 * The labels of a namespace. Standalone mode has no Namespace objects, so a namespace carries only the
 * label Kubernetes puts on every namespace (since 1.22): `kubernetes.io/metadata.name: <name>`.
 */
export function namespaceLabels(namespace: string): Readonly<Record<string, string>> {
  return { 'kubernetes.io/metadata.name': namespace };
}
