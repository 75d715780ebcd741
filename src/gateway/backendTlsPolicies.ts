import type { IrUpstreamTls } from '../model/ir.js';
import type { BackendTLSPolicy, ConfigMap, ObjectStatus } from '../sources/objects.js';
import { type Condition, ConditionType, condition, generationOf, sortConditions } from './conditions.js';
import { compareAge } from './precedence.js';

/** The key of a ConfigMap that holds a PEM bundle of CA certificates, as BackendTLSPolicy defines it. */
export const CA_CERTIFICATE_KEY = 'ca.crt';

/** Reasons of BackendTLSPolicy conditions (the policy ones of GEP-713 and BackendTLSPolicy's own). */
export const BackendTlsPolicyReason = {
  Accepted: 'Accepted',
  Conflicted: 'Conflicted',
  Invalid: 'Invalid',
  NoValidCACertificate: 'NoValidCACertificate',
  ResolvedRefs: 'ResolvedRefs',
  InvalidCACertificateRef: 'InvalidCACertificateRef',
  InvalidKind: 'InvalidKind',
} as const;

/**
 * What a BackendTLSPolicy makes of the Service ports it targets: TLS settings, or, when the policy
 * cannot be used (no valid CA, an unsupported setting), `invalid`: then the port's backends get no
 * endpoints, so requests fail rather than go to the backend in clear text. `key` changes whenever the
 * outcome does (backends are memoised on it).
 */
export interface UpstreamTlsOutcome {
  readonly key: string;
  readonly tls?: IrUpstreamTls;
  readonly invalid?: string;
}

interface PolicyState {
  readonly policy: BackendTLSPolicy;
  readonly namespace: string;
  readonly name: string;
  readonly outcome: UpstreamTlsOutcome;
  readonly accepted: Verdict;
  readonly resolvedRefs: Verdict;
  /** `namespace/service` of the Services it targets. */
  readonly services: readonly string[];
}

/**
 * BackendTLSPolicies (v1 and v1alpha3, the same schema), checked once per build.
 *
 * - Targets are core Services, the whole Service or one port by name (`sectionName`). A policy for a
 *   port wins over one for the whole Service; two policies for the same target conflict, and the older
 *   (creationTimestamp, then namespace/name) wins: the other is Accepted=False, Conflicted (GEP-713).
 * - `validation.caCertificateRefs` name ConfigMaps in the policy's namespace whose `ca.crt` holds PEM
 *   certificates; the valid ones together are the trusted CAs. A ref to another kind is InvalidKind, a
 *   missing ConfigMap or one without a certificate InvalidCACertificateRef (ResolvedRefs=False). With
 *   no valid CA at all the policy is Accepted=False, NoValidCACertificate, and its backends fail.
 * - `wellKnownCACertificates: System` is not supported (Accepted=False, Invalid; its backends fail):
 *   Envoy has no setting for "the platform's trust store" (only a file path, which differs between
 *   systems), and reading the bundle here would be I/O in a pure translator. The spec allows this.
 * - `validation.hostname` is the SNI sent and, unless `subjectAltNames` lists names, the name the
 *   backend's certificate must carry.
 */
export class BackendTlsIndex {
  readonly policies: readonly BackendTLSPolicy[];
  readonly #states: PolicyState[] = [];
  /** `namespace/service/sectionName` (empty for the whole Service) → the policy that won it. */
  readonly #targets = new Map<string, PolicyState>();
  /** Per policy state, the targets it lost to an older policy. */
  readonly #lost = new Map<PolicyState, string[]>();

  constructor(policies: readonly BackendTLSPolicy[], configMaps: readonly ConfigMap[]) {
    this.policies = policies;
    if (policies.length === 0) return;
    const maps = new Map<string, ConfigMap>();
    for (const cm of configMaps)
      maps.set(`${cm.metadata?.namespace ?? 'default'}/${cm.metadata?.name ?? ''}`, cm);
    const ordered = [...policies].sort(
      (a, b) =>
        compareAge(a, b) ||
        cmp(a.metadata?.namespace ?? 'default', b.metadata?.namespace ?? 'default') ||
        cmp(a.metadata?.name ?? '', b.metadata?.name ?? ''),
    );
    for (const policy of ordered) {
      const state = policyState(policy, maps);
      this.#states.push(state);
      const lost: string[] = [];
      for (const ref of policy.spec?.targetRefs ?? []) {
        if (ref.group !== '' || ref.kind !== 'Service') continue;
        const target = `${state.namespace}/${ref.name}/${ref.sectionName ?? ''}`;
        const winner = this.#targets.get(target);
        if (winner === undefined) this.#targets.set(target, state);
        else if (winner !== state)
          lost.push(
            `${ref.name}${ref.sectionName === undefined ? '' : ` port ${ref.sectionName}`} (taken by ${winner.namespace}/${winner.name})`,
          );
      }
      this.#lost.set(state, lost);
    }
  }

  /** The TLS outcome for one Service port (by name; empty when the port has none), if a policy targets it. */
  forPort(namespace: string, service: string, portName: string): UpstreamTlsOutcome | undefined {
    if (this.#targets.size === 0) return undefined;
    const state =
      (portName === '' ? undefined : this.#targets.get(`${namespace}/${service}/${portName}`)) ??
      this.#targets.get(`${namespace}/${service}/`);
    return state?.outcome;
  }

  /**
   * The status of each policy that has ancestors: the Gateways through which routes reach a Service it
   * targets (`gatewaysOf('namespace/service')`, as `namespace/name`). A policy no route of ours uses has
   * no status from us. Sorted by namespace/name.
   */
  statuses(
    gatewaysOf: (service: string) => Iterable<string>,
    controllerName: string,
    transitionTime: string,
  ): ObjectStatus[] {
    const out: ObjectStatus[] = [];
    for (const s of this.#states) {
      const gateways = new Set<string>();
      for (const svc of s.services) for (const g of gatewaysOf(svc)) gateways.add(g);
      if (gateways.size === 0) continue;
      const ctx = { generation: generationOf(s.policy), transitionTime };
      const lost = this.#lost.get(s) ?? [];
      const targets = (s.policy.spec?.targetRefs ?? []).filter((r) => r.group === '' && r.kind === 'Service');
      let accepted = s.accepted;
      if (targets.length === 0) {
        accepted = {
          ok: false,
          reason: BackendTlsPolicyReason.Invalid,
          message: 'no targetRef is a core Service',
        };
      } else if (accepted.ok && lost.length === targets.length) {
        accepted = {
          ok: false,
          reason: BackendTlsPolicyReason.Conflicted,
          message: `an older BackendTLSPolicy targets the same: ${lost.join(', ')}`,
        };
      }
      const conditions: Condition[] = sortConditions([
        condition(ctx, ConditionType.Accepted, accepted.ok, accepted.reason, accepted.message),
        condition(
          ctx,
          ConditionType.ResolvedRefs,
          s.resolvedRefs.ok,
          s.resolvedRefs.reason,
          s.resolvedRefs.message,
        ),
      ]);
      const ancestors = [...gateways].sort(cmp).map((key) => {
        const [namespace, name] = key.split('/') as [string, string];
        return {
          ancestorRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace, name },
          controllerName,
          conditions,
        };
      });
      out.push({
        apiVersion: s.policy.apiVersion,
        kind: 'BackendTLSPolicy',
        namespace: s.namespace,
        name: s.name,
        status: { ancestors },
      });
    }
    return out.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
  }
}

function policyState(policy: BackendTLSPolicy, maps: ReadonlyMap<string, ConfigMap>): PolicyState {
  const namespace = policy.metadata?.namespace ?? 'default';
  const name = policy.metadata?.name ?? '';
  const services = [
    ...new Set(
      (policy.spec?.targetRefs ?? [])
        .filter((r) => r.group === '' && r.kind === 'Service')
        .map((r) => `${namespace}/${r.name}`),
    ),
  ].sort(cmp);
  const v = policy.spec?.validation;
  const base = { policy, namespace, name, services };
  const invalid = (reason: string, message: string, refs: Verdict = resolvedOk): PolicyState => ({
    ...base,
    outcome: { key: `invalid:${namespace}/${name}:${message}`, invalid: message },
    accepted: { ok: false, reason, message },
    resolvedRefs: refs,
  });
  if (v === undefined) return invalid(BackendTlsPolicyReason.Invalid, 'validation is missing');
  if (v.wellKnownCACertificates !== undefined) {
    return invalid(
      BackendTlsPolicyReason.Invalid,
      `wellKnownCACertificates ${v.wellKnownCACertificates} is not supported: Envoy has no setting for the platform's trust store; list the CAs in caCertificateRefs`,
    );
  }

  const pems: string[] = [];
  const failures: { reason: string; message: string }[] = [];
  for (const [i, ref] of (v.caCertificateRefs ?? []).entries()) {
    const at = `caCertificateRefs[${i}]`;
    if (ref.group !== '' || ref.kind !== 'ConfigMap') {
      failures.push({
        reason: BackendTlsPolicyReason.InvalidKind,
        message: `${at}: ${ref.group === '' ? '' : `${ref.group}/`}${ref.kind} ${ref.name} is not a supported kind; use a ConfigMap`,
      });
      continue;
    }
    const cm = maps.get(`${namespace}/${ref.name}`);
    const pem = cm?.data?.[CA_CERTIFICATE_KEY];
    if (cm === undefined) {
      failures.push({
        reason: BackendTlsPolicyReason.InvalidCACertificateRef,
        message: `${at}: ConfigMap ${namespace}/${ref.name} not found`,
      });
    } else if (pem === undefined || !isPemCertificate(pem)) {
      failures.push({
        reason: BackendTlsPolicyReason.InvalidCACertificateRef,
        message: `${at}: ConfigMap ${namespace}/${ref.name} has no PEM certificate under ${CA_CERTIFICATE_KEY}`,
      });
    } else {
      pems.push(pem.endsWith('\n') ? pem : `${pem}\n`);
    }
  }
  const first = failures[0];
  const resolvedRefs: Verdict =
    first === undefined
      ? resolvedOk
      : { ok: false, reason: first.reason, message: failures.map((f) => f.message).join('; ') };
  if (pems.length === 0) {
    return invalid(
      BackendTlsPolicyReason.NoValidCACertificate,
      'no caCertificateRef resolves to a CA certificate, so the backend cannot be verified',
      resolvedRefs,
    );
  }
  const tls: IrUpstreamTls = {
    sni: v.hostname,
    trust: { kind: 'pem', pem: pems.join('') },
    subjectAltNames: (v.subjectAltNames ?? []).map((san) =>
      san.type === 'URI'
        ? { kind: 'URI', value: san.uri ?? '' }
        : { kind: 'Hostname', value: san.hostname ?? '' },
    ),
  };
  return {
    ...base,
    outcome: { key: JSON.stringify(tls), tls },
    accepted: { ok: true, reason: BackendTlsPolicyReason.Accepted, message: 'the policy is valid' },
    resolvedRefs,
  };
}

interface Verdict {
  readonly ok: boolean;
  readonly reason: string;
  readonly message: string;
}

const resolvedOk: Verdict = {
  ok: true,
  reason: BackendTlsPolicyReason.ResolvedRefs,
  message: 'all references resolved',
};

function isPemCertificate(text: string): boolean {
  return /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(text);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
