import { DEFAULT_CONTROLLER_NAME } from '../../gateway/translate.js';
import { classOf, selectClasses } from '../../ingress/classes.js';
import { DEFAULT_INGRESS_CONTROLLER } from '../../ingress/translate.js';
import type { ObjectSet } from '../objects.js';
import { storeKey } from './objectStore.js';

export interface ReferencedObjects {
  /** `namespace/name` of every Secret that a Gateway listener or an Ingress of Skein's classes names. */
  readonly secrets: ReadonlySet<string>;
  /** `namespace/name` of every ConfigMap a BackendTLSPolicy names for its CA certificates. */
  readonly configMaps: ReadonlySet<string>;
}

/**
 * Which Secrets and ConfigMaps Skein needs to read: only those its objects name. Gateways count when
 * their class is Skein's, Ingresses when their IngressClass is; every BackendTLSPolicy counts (a policy
 * names Services, not a controller). Whether a cross-namespace reference is allowed is the translator's
 * question (ReferenceGrants); a Secret named across namespaces is read so that it can answer it.
 */
export function referencedObjects(
  objects: ObjectSet,
  controllers: { readonly gateway?: string; readonly ingress?: string } = {},
): ReferencedObjects {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  const gatewayController = controllers.gateway ?? DEFAULT_CONTROLLER_NAME;
  const ourClasses = new Set(
    objects.gatewayClasses
      .filter((c) => c.spec?.controllerName === gatewayController)
      .map((c) => c.metadata?.name ?? ''),
  );
  for (const g of objects.gateways) {
    if (!ourClasses.has(g.spec?.gatewayClassName ?? '')) continue;
    const ns = g.metadata?.namespace ?? 'default';
    for (const l of g.spec?.listeners ?? []) {
      for (const ref of l.tls?.certificateRefs ?? []) {
        if ((ref.group ?? '') !== '' || (ref.kind ?? 'Secret') !== 'Secret' || ref.name === '') continue;
        secrets.add(storeKey(ref.namespace ?? ns, ref.name));
      }
    }
  }
  const selection = selectClasses(objects.ingressClasses, controllers.ingress ?? DEFAULT_INGRESS_CONTROLLER);
  for (const ing of objects.ingresses) {
    if (classOf(ing, selection) === undefined) continue;
    const ns = ing.metadata?.namespace ?? 'default';
    for (const t of ing.spec?.tls ?? []) {
      if (t.secretName !== undefined && t.secretName !== '') secrets.add(storeKey(ns, t.secretName));
    }
  }
  for (const p of objects.backendTLSPolicies) {
    const ns = p.metadata?.namespace ?? 'default';
    for (const ref of p.spec?.validation?.caCertificateRefs ?? []) {
      if (ref.group === '' && ref.kind === 'ConfigMap' && ref.name !== '')
        configMaps.add(storeKey(ns, ref.name));
    }
  }
  return { secrets, configMaps };
}
