import type { GatewayClass, ObjectStatus } from '../sources/objects.js';
import { type Condition, ConditionType, condition, GatewayClassReason, generationOf } from './conditions.js';

/** A GatewayClass whose controllerName is ours. Classes of other controllers are not looked at at all. */
export interface ClassState {
  readonly name: string;
  readonly accepted: boolean;
  /** Why it is not accepted, for the messages of its Gateways. */
  readonly message: string;
}

export interface GatewayClassesResult {
  /** Our classes by name. A Gateway whose class is not in here belongs to someone else. */
  readonly classes: ReadonlyMap<string, ClassState>;
  readonly statuses: ObjectStatus[];
}

/** A Gateway API CRD present in the cluster and its `gateway.networking.k8s.io/bundle-version` annotation. */
export interface CrdBundleVersion {
  /** The CRD's name, e.g. `httproutes.gateway.networking.k8s.io`. */
  readonly name: string;
  /** Undefined when the CRD has no bundle-version annotation. */
  readonly bundleVersion?: string;
}

/** The Gateway API release Skein implements: its standard channel, and the experimental route kinds. */
export const GATEWAY_API_VERSION = 'v1.6.3';

/** Bundle versions Skein reads objects of: any patch release of the minor it implements. */
const SUPPORTED_BUNDLE = /^v1\.6\.\d+$/;

/**
 * The conformance features (sigs.k8s.io/gateway-api pkg/features names) Skein implements, sorted by
 * name as status.supportedFeatures must be. Left out, because Skein does not do them: GatewayAddressEmpty
 * (it binds every interface rather than pick an address), GatewayInfrastructure (parametersRef is
 * rejected), ListenerSet, frontend client certificate validation, named route rules, destination port
 * matching, TLSRouteModeMixed (Passthrough and Terminate on one port conflict), and mesh.
 */
export const SUPPORTED_FEATURES: readonly string[] = [
  'BackendTLSPolicy',
  'BackendTLSPolicySANValidation',
  'GRPCRoute',
  'Gateway',
  'GatewayHTTPListenerIsolation',
  'GatewayPort8080',
  'GatewayStaticAddresses',
  'HTTPRoute',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute307RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
  'HTTPRouteBackendProtocolH2C',
  'HTTPRouteBackendProtocolWebSocket',
  'HTTPRouteBackendRequestHeaderModification',
  'HTTPRouteBackendTimeout',
  'HTTPRouteCORS',
  'HTTPRouteHostRewrite',
  'HTTPRouteMethodMatching',
  'HTTPRouteParentRefPort',
  'HTTPRoutePathRedirect',
  'HTTPRoutePathRewrite',
  'HTTPRoutePortRedirect',
  'HTTPRouteQueryParamMatching',
  'HTTPRouteRequestMirror',
  'HTTPRouteRequestMultipleMirrors',
  'HTTPRouteRequestPercentageMirror',
  'HTTPRouteRequestTimeout',
  'HTTPRouteResponseHeaderModification',
  'HTTPRouteRetry',
  'HTTPRouteRetryBackendTimeout',
  'HTTPRouteRetryConnectionError',
  'HTTPRouteSchemeRedirect',
  'ReferenceGrant',
  'TCPRoute',
  'TLSRoute',
  'TLSRouteModeTerminate',
  'UDPRoute',
];

/**
 * Step 1: the GatewayClasses Skein owns. A class is accepted unless it has a parametersRef: Skein takes
 * no parameters, and the spec asks to reject a class whose parameters cannot be honoured
 * (InvalidParameters) rather than ignore them.
 *
 * Each gets SupportedVersion (which the spec asks for when a class is marked Accepted): True unless a
 * Gateway API CRD in `crds` has no bundle-version or one Skein does not implement. Then it is False
 * (UnsupportedVersion, naming the CRDs and versions), and the class stays accepted: Skein serves it as
 * best it can, one of the two choices the spec leaves. Without `crds` (standalone: objects come from
 * files, checked against Skein's own schema) there is nothing to compare and it is True. And
 * status.supportedFeatures lists SUPPORTED_FEATURES.
 */
export function processGatewayClasses(
  gatewayClasses: readonly GatewayClass[],
  controllerName: string,
  transitionTime: string,
  crds?: readonly CrdBundleVersion[],
): GatewayClassesResult {
  const classes = new Map<string, ClassState>();
  const statuses: ObjectStatus[] = [];
  const version = supportedVersion(crds);
  const supportedFeatures = SUPPORTED_FEATURES.map((name) => ({ name }));
  for (const gc of gatewayClasses) {
    const name = gc.metadata?.name;
    if (name === undefined || gc.spec?.controllerName !== controllerName) continue;
    const ctx = { generation: generationOf(gc), transitionTime };
    const ref = gc.spec.parametersRef;
    let accepted: Condition;
    if (ref !== undefined) {
      const what = `${ref.group === '' ? '' : `${ref.group}/`}${ref.kind} ${ref.namespace === undefined ? '' : `${ref.namespace}/`}${ref.name}`;
      accepted = condition(
        ctx,
        ConditionType.Accepted,
        false,
        GatewayClassReason.InvalidParameters,
        `Skein takes no parameters, so parametersRef (${what}) cannot be honoured; remove it`,
      );
    } else {
      accepted = condition(
        ctx,
        ConditionType.Accepted,
        true,
        GatewayClassReason.Accepted,
        `Skein (${controllerName}) serves this class`,
      );
    }
    const supported = condition(
      ctx,
      ConditionType.SupportedVersion,
      version.ok,
      version.ok ? GatewayClassReason.SupportedVersion : GatewayClassReason.UnsupportedVersion,
      version.message,
    );
    classes.set(name, { name, accepted: accepted.status === 'True', message: accepted.message });
    statuses.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      namespace: '',
      name,
      status: { conditions: [accepted, supported], supportedFeatures },
    });
  }
  return { classes, statuses };
}

function supportedVersion(crds: readonly CrdBundleVersion[] | undefined): { ok: boolean; message: string } {
  const implemented = `Skein implements Gateway API ${GATEWAY_API_VERSION} (bundle versions v1.6.x)`;
  if (crds === undefined) {
    return {
      ok: true,
      message: `${implemented}; no CRDs were given to check (objects are read as it defines them)`,
    };
  }
  const off = crds
    .filter((c) => c.bundleVersion === undefined || !SUPPORTED_BUNDLE.test(c.bundleVersion))
    .map((c) => `${c.name} (${c.bundleVersion ?? 'no bundle-version annotation'})`)
    .sort();
  if (off.length === 0) return { ok: true, message: `${implemented}; the Gateway API CRDs present match` };
  const shown = off.length > 5 ? [...off.slice(0, 5), `and ${off.length - 5} more`] : off;
  return {
    ok: false,
    message: `${implemented}, but these CRDs have another or no bundle-version: ${shown.join(', ')}; serving on a best-effort basis`,
  };
}
