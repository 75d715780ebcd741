import { createdMs } from '../gateway/precedence.js';
import type { Ingress, IngressClass } from '../sources/objects.js';

/** Marks the IngressClass that Ingresses without a class belong to. */
export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
/** The class of an Ingress before `spec.ingressClassName` existed; still honoured when the field is unset. */
export const LEGACY_CLASS_ANNOTATION = 'kubernetes.io/ingress.class';

export interface ClassSelection {
  /** Names of the IngressClasses whose `spec.controller` is ours. */
  readonly ours: ReadonlySet<string>;
  /** The default IngressClass, when it is ours. */
  readonly defaultClass: string | undefined;
}

/**
 * Step 1: the IngressClasses Skein serves (`spec.controller` equals the controller name) and the default
 * class. Several classes may carry the default annotation (`"true"`); as the API server's admission does,
 * the most recently created one is the default (on a tie, the first by name). It matters here only if it
 * is ours. `spec.parameters` is not read.
 */
export function selectClasses(classes: readonly IngressClass[], controllerName: string): ClassSelection {
  const ours = new Set<string>();
  let defaultClass: IngressClass | undefined;
  for (const c of classes) {
    const name = c.metadata?.name ?? '';
    if (c.spec?.controller === controllerName) ours.add(name);
    if (c.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] !== 'true') continue;
    if (defaultClass === undefined || newer(c, defaultClass)) defaultClass = c;
  }
  const name = defaultClass?.metadata?.name;
  return { ours, defaultClass: name !== undefined && ours.has(name) ? name : undefined };
}

function newer(a: IngressClass, b: IngressClass): boolean {
  const ta = createdMs(a);
  const tb = createdMs(b);
  const fa = Number.isFinite(ta) ? ta : Number.NEGATIVE_INFINITY;
  const fb = Number.isFinite(tb) ? tb : Number.NEGATIVE_INFINITY;
  if (fa !== fb) return fa > fb;
  return (a.metadata?.name ?? '') < (b.metadata?.name ?? '');
}

/**
 * Step 2: the class an Ingress belongs to, if Skein serves it: `spec.ingressClassName`; else the legacy
 * `kubernetes.io/ingress.class` annotation (which names an IngressClass the same way); else the default
 * class. Ingresses of any other class, or naming a class that does not exist, are not Skein's: they get
 * no status and no listener.
 */
export function classOf(ingress: Ingress, selection: ClassSelection): string | undefined {
  const named = ingress.spec?.ingressClassName ?? ingress.metadata?.annotations?.[LEGACY_CLASS_ANNOTATION];
  if (named !== undefined && named !== '') return selection.ours.has(named) ? named : undefined;
  return selection.defaultClass;
}
