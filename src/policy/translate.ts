/**
 * Kubernetes NetworkPolicy (networking.k8s.io/v1), with the Pods and Namespaces it selects, into the
 * policy IR of one node. Pure: the same objects and options give the same IR, byte for byte.
 *
 * Semantics, as the NetworkPolicy API defines them:
 * - A policy selects the pods of its namespace that match spec.podSelector, for the directions in
 *   spec.policyTypes (default: Ingress, plus Egress when spec.egress has rules). A selected pod is
 *   isolated in that direction: only what some rule of some policy allows passes (policies add up).
 * - A rule allows traffic from (ingress) or to (egress) its peers on its ports. No peers: any peer; no
 *   ports: any port and protocol. A peer is pods by podSelector (in the policy's namespace), by
 *   namespaceSelector (every pod of the matching namespaces), both (pods matching podSelector in matching
 *   namespaces), or an ipBlock (a CIDR minus its excepts; pod addresses included).
 * - A port is a number, a number range (endPort) or a container port name (of the selected pod for
 *   ingress, of the destination pod for egress), for TCP (default), UDP or SCTP.
 *
 * Skein adds: traffic from the node itself (kubelet probes) is allowed into selected pods
 * (`allowFromHost`), and a policy annotated `policy.skein.io/redirect-ports: "8080,9090"` sends the TCP
 * traffic its rules allow to those ports through the node's Envoy (a redirect verdict, `proxyPort`).
 */

import type { INetworkPolicyPeer } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPeer';
import type { INetworkPolicyPort } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicyPort';
import {
  type PolicyDirection,
  type PolicyEndpoint,
  type PolicyIdentity,
  type PolicyIpCacheEntry,
  type PolicyIr,
  type PolicyPort,
  type PolicyProtocol,
  type PolicyRule,
  ReservedIdentity,
} from '../model/policy.js';
import { comparePrefixes, type Prefix, parsePrefix, prefixContains } from '../model/prefix.js';
import { validatePolicy } from '../model/validatePolicy.js';
import type { Diagnostic, NetworkPolicy, ObjectSet, Pod } from '../sources/objects.js';
import { objectKey } from '../sources/objects.js';
import { NetpolCode } from './codes.js';
import {
  allocateIdentities,
  cidrIdentityKey,
  labelIdentityKey,
  NON_SECURITY_LABELS,
  securityLabels,
  sortedLabels,
} from './identities.js';
import { type LabelSelector, matchesSelector, selectorKeys } from './selectors.js';

export interface PolicyOptions {
  /** This node's name: its pods (spec.nodeName) become endpoints. */
  readonly nodeName: string;
  /** This node's own addresses: the host identity. */
  readonly nodeAddresses?: readonly string[];
  /** The host-side interface of each local pod, by pod IP (from the node's routes; see src/datapath/). */
  readonly interfaces: ReadonlyMap<string, string>;
  /** Identity numbers handed out before (persisted by the agent): kept while their label set exists. */
  readonly previousIdentities?: ReadonlyMap<string, number>;
  /** The node Envoy's transparent listener, for redirects. Default 15001. */
  readonly proxyPort?: number;
  /** Allow the node (kubelet probes) into every pod a policy isolates for ingress. Default true. */
  readonly allowFromHost?: boolean;
  /**
   * Whether the node proxy takes redirects (the agent's `l7Proxy`). Default true. Off, a redirect
   * annotation is reported and the traffic its rules allow is allowed directly, not through the proxy.
   */
  readonly l7Proxy?: boolean;
}

export interface PolicyResult {
  readonly ir: PolicyIr;
  readonly diagnostics: readonly Diagnostic[];
  /** Every identity key and its number: what the agent persists as `previousIdentities`. */
  readonly identities: ReadonlyMap<string, number>;
}

/** The annotation that sends a policy's TCP ports through the node proxy. */
export const REDIRECT_ANNOTATION = 'policy.skein.io/redirect-ports';
export const DEFAULT_PROXY_PORT = 15001;

interface PodInfo {
  readonly pod: Pod;
  readonly namespace: string;
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly addresses: readonly string[];
  readonly identityKey: string;
}

interface LabelIdentity {
  readonly id: number;
  readonly namespace: string;
  readonly podLabels: Readonly<Record<string, string>>;
  readonly namespaceLabels: Readonly<Record<string, string>>;
  readonly pods: PodInfo[];
}

/** What every rule translation reads. */
interface Context {
  readonly labelIdentities: readonly LabelIdentity[];
  readonly cidrs: readonly { readonly prefix: Prefix; readonly id: number }[];
  readonly diagnostics: Diagnostic[];
  readonly proxyPort: number;
  readonly l7Proxy: boolean;
}

export function translatePolicy(objects: ObjectSet, options: PolicyOptions): PolicyResult {
  const diagnostics: Diagnostic[] = [];

  // Namespaces: their labels, with the name label the API server sets (a namespace no object declares
  // still has it).
  const namespaceLabels = namespaceLabelsOf(objects);

  // Pods with addresses: their label sets (identities) and who holds each address.
  const pods = podInfos(objects, namespaceLabels, diagnostics);

  // ipBlocks of every policy: one CIDR identity per distinct prefix (excepts included).
  const cidrPrefixes = policyCidrs(objects.networkPolicies);

  // Identity numbers: stable for a label set while it exists (previous), else derived from it.
  const identities = allocateIdentities(
    [...pods.map((p) => p.identityKey), ...cidrPrefixes.map((p) => cidrIdentityKey(p.canonical))],
    options.previousIdentities,
  );
  const labelIdentities = groupByIdentity(pods, identities);
  const cidrs = cidrPrefixes.map((prefix) => ({
    prefix,
    id: identities.get(cidrIdentityKey(prefix.canonical)) ?? 0,
  }));

  // The ipcache: pod addresses (first holder wins), then this node's addresses (the host).
  const ipcache = ipcacheEntries(pods, identities, options.nodeAddresses ?? [], diagnostics);

  // Endpoints: this node's pods with an interface, and the rules of every policy that selects them.
  const ctx: Context = {
    labelIdentities,
    cidrs,
    diagnostics,
    proxyPort: options.proxyPort ?? DEFAULT_PROXY_PORT,
    l7Proxy: options.l7Proxy !== false,
  };
  // Rules come in policy order (namespace, name), whatever order the source gave.
  const policies = [...objects.networkPolicies].sort(
    (a, b) =>
      cmp(a.metadata?.namespace ?? 'default', b.metadata?.namespace ?? 'default') ||
      cmp(a.metadata?.name ?? '', b.metadata?.name ?? ''),
  );
  const endpoints = localEndpoints(policies, pods, identities, options, ctx);

  const ir: PolicyIr = {
    identities: identityList(labelIdentities, cidrs),
    ipcache,
    endpoints,
  };
  // A translator bug, not user input: report it; the datapath refuses an IR that does not validate, so
  // the last good one keeps being enforced.
  for (const e of validatePolicy(ir)) {
    diagnostics.push({
      code: NetpolCode.Internal,
      severity: 'error',
      field: e.path,
      message: `${e.code}: ${e.message}`,
    });
  }
  // A problem of a policy is met once per endpoint it selects: report it once.
  const unique = [...new Map(diagnostics.map((d) => [JSON.stringify(d), d])).values()];
  return { ir, diagnostics: unique, identities };
}

// --- namespaces and pods ---------------------------------------------------------------------------

function namespaceLabelsOf(objects: ObjectSet): Map<string, Record<string, string>> {
  const out = new Map<string, Record<string, string>>();
  for (const ns of objects.namespaces) {
    const name = ns.metadata?.name;
    if (name !== undefined)
      out.set(name, sortedLabels({ ...ns.metadata?.labels, 'kubernetes.io/metadata.name': name }));
  }
  return out;
}

function labelsOfNamespace(labels: Map<string, Record<string, string>>, ns: string): Record<string, string> {
  return labels.get(ns) ?? { 'kubernetes.io/metadata.name': ns };
}

function podAddresses(pod: Pod): string[] {
  const ips = (pod.status?.podIPs ?? []).map((p) => p.ip).filter((ip): ip is string => ip !== undefined);
  if (ips.length === 0 && pod.status?.podIP !== undefined) ips.push(pod.status.podIP);
  return [...new Set(ips.map((ip) => parsePrefix(ip)?.address).filter((a): a is string => a !== undefined))];
}

/**
 * Pods that hold addresses: not host-network (their address is the node's), not finished (their address
 * is free again). Sorted running first, then by namespace and name: the first holder of an address keeps it.
 */
function podInfos(
  objects: ObjectSet,
  namespaceLabels: Map<string, Record<string, string>>,
  diagnostics: Diagnostic[],
): PodInfo[] {
  const infos: PodInfo[] = [];
  for (const pod of objects.pods) {
    const phase = pod.status?.phase;
    if (pod.spec?.hostNetwork === true || phase === 'Succeeded' || phase === 'Failed') continue;
    const addresses = podAddresses(pod);
    if (addresses.length === 0) continue;
    const namespace = pod.metadata?.namespace ?? 'default';
    const labels = pod.metadata?.labels ?? {};
    infos.push({
      pod,
      namespace,
      name: pod.metadata?.name ?? '',
      labels,
      addresses,
      identityKey: labelIdentityKey(
        namespace,
        securityLabels(labels),
        labelsOfNamespace(namespaceLabels, namespace),
      ),
    });
  }
  const rank = (p: PodInfo): number => (p.pod.status?.phase === 'Running' ? 0 : 1);
  infos.sort((a, b) => rank(a) - rank(b) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
  const holders = new Map<string, PodInfo>();
  const out: PodInfo[] = [];
  for (const p of infos) {
    const taken = p.addresses.filter((a) => holders.has(a));
    for (const a of taken) {
      const holder = holders.get(a);
      diagnostics.push({
        code: NetpolCode.DuplicateAddress,
        severity: 'warning',
        object: objectKey('Pod', p.namespace, p.name),
        field: 'status.podIPs',
        message: `${a} is also the address of Pod ${holder?.namespace}/${holder?.name}, which keeps it; this pod is left out of policy`,
      });
    }
    if (taken.length > 0) continue;
    for (const a of p.addresses) holders.set(a, p);
    out.push(p);
  }
  return out.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name));
}

function groupByIdentity(pods: readonly PodInfo[], identities: ReadonlyMap<string, number>): LabelIdentity[] {
  const byId = new Map<number, LabelIdentity>();
  for (const p of pods) {
    const id = identities.get(p.identityKey) ?? 0;
    let li = byId.get(id);
    if (li === undefined) {
      const [, namespace, podLabels, nsLabels] = JSON.parse(p.identityKey) as [
        string,
        string,
        Record<string, string>,
        Record<string, string>,
      ];
      li = { id, namespace, podLabels, namespaceLabels: nsLabels, pods: [] };
      byId.set(id, li);
    }
    li.pods.push(p);
  }
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

function identityList(
  labels: readonly LabelIdentity[],
  cidrs: readonly { prefix: Prefix; id: number }[],
): PolicyIdentity[] {
  const out: PolicyIdentity[] = [
    { id: ReservedIdentity.host, kind: 'reserved', name: 'host' },
    { id: ReservedIdentity.world, kind: 'reserved', name: 'world' },
    ...labels.map(
      (l): PolicyIdentity => ({
        id: l.id,
        kind: 'labels',
        namespace: l.namespace,
        podLabels: l.podLabels,
        namespaceLabels: l.namespaceLabels,
      }),
    ),
    ...cidrs.map((c): PolicyIdentity => ({ id: c.id, kind: 'cidr', cidr: c.prefix.canonical })),
  ];
  return out.sort((a, b) => a.id - b.id);
}

function ipcacheEntries(
  pods: readonly PodInfo[],
  identities: ReadonlyMap<string, number>,
  nodeAddresses: readonly string[],
  diagnostics: Diagnostic[],
): PolicyIpCacheEntry[] {
  const entries = new Map<string, { prefix: Prefix; identity: number }>();
  for (const a of nodeAddresses) {
    const prefix = parsePrefix(a);
    if (prefix !== undefined) entries.set(prefix.canonical, { prefix, identity: ReservedIdentity.host });
  }
  for (const p of pods) {
    for (const a of p.addresses) {
      const prefix = parsePrefix(a);
      if (prefix === undefined) continue;
      if (entries.has(prefix.canonical)) {
        diagnostics.push({
          code: NetpolCode.DuplicateAddress,
          severity: 'warning',
          object: objectKey('Pod', p.namespace, p.name),
          field: 'status.podIPs',
          message: `${a} is an address of this node; it keeps the node's identity`,
        });
        continue;
      }
      entries.set(prefix.canonical, { prefix, identity: identities.get(p.identityKey) ?? 0 });
    }
  }
  return [...entries.values()]
    .sort((a, b) => comparePrefixes(a.prefix, b.prefix))
    .map((e) => ({ prefix: e.prefix.canonical, identity: e.identity }));
}

// --- CIDRs ----------------------------------------------------------------------------------------

function policyCidrs(policies: readonly NetworkPolicy[]): Prefix[] {
  const seen = new Map<string, Prefix>();
  const add = (text: string | undefined): void => {
    const p = text === undefined ? undefined : parsePrefix(text);
    if (p !== undefined) seen.set(p.canonical, p);
  };
  for (const np of policies) {
    const peers = [
      ...(np.spec?.ingress ?? []).flatMap((r) => r.from ?? []),
      ...(np.spec?.egress ?? []).flatMap((r) => r.to ?? []),
    ];
    for (const peer of peers) {
      add(peer.ipBlock?.cidr);
      for (const e of peer.ipBlock?.except ?? []) add(e);
    }
  }
  return [...seen.values()].sort(comparePrefixes);
}

// --- endpoints and their rules ---------------------------------------------------------------------

function localEndpoints(
  policies: readonly NetworkPolicy[],
  pods: readonly PodInfo[],
  identities: ReadonlyMap<string, number>,
  options: PolicyOptions,
  ctx: Context,
): PolicyEndpoint[] {
  const out: PolicyEndpoint[] = [];
  for (const p of pods) {
    if (p.pod.spec?.nodeName !== options.nodeName) continue;
    const iface = p.addresses.map((a) => options.interfaces.get(a)).find((i) => i !== undefined);
    if (iface === undefined) {
      ctx.diagnostics.push({
        code: NetpolCode.NoInterface,
        severity: 'warning',
        object: objectKey('Pod', p.namespace, p.name),
        message: `runs on this node but no interface holds ${p.addresses.join(', ')}; its policy is not enforced`,
      });
      continue;
    }
    const selecting = policies.filter(
      (np) =>
        (np.metadata?.namespace ?? 'default') === p.namespace &&
        matchesSelector(np.spec?.podSelector ?? {}, p.labels),
    );
    const ingress = direction(selecting, 'Ingress', p, ctx);
    const egress = direction(selecting, 'Egress', p, ctx);
    if (ingress.enforced && options.allowFromHost !== false) {
      (ingress.rules as PolicyRule[]).push({
        peers: [ReservedIdentity.host],
        ports: [],
        verdict: 'allow',
        origin: 'the node (kubelet probes): allowFromHost',
      });
    }
    out.push({
      name: `${p.namespace}/${p.name}`,
      addresses: p.addresses,
      interface: iface,
      identity: identities.get(p.identityKey) ?? 0,
      ingress,
      egress,
    });
  }
  return out;
}

/** The policy types a policy applies to, defaulted as the API server does. */
function policyTypes(np: NetworkPolicy): Set<'Ingress' | 'Egress'> {
  const given = np.spec?.policyTypes;
  if (given !== undefined && given.length > 0) return new Set(given);
  return new Set((np.spec?.egress?.length ?? 0) > 0 ? ['Ingress', 'Egress'] : ['Ingress']);
}

function direction(
  selecting: readonly NetworkPolicy[],
  type: 'Ingress' | 'Egress',
  endpoint: PodInfo,
  ctx: Context,
): PolicyDirection {
  const applying = selecting.filter((np) => policyTypes(np).has(type));
  if (applying.length === 0) return { enforced: false, rules: [] };
  const rules: PolicyRule[] = [];
  for (const np of applying) {
    const redirects = redirectPorts(np, ctx);
    const list =
      type === 'Ingress'
        ? (np.spec?.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
        : (np.spec?.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    list.forEach((r, i) => {
      const field = type === 'Ingress' ? `spec.ingress[${i}].from` : `spec.egress[${i}].to`;
      const origin = `${objectKey('NetworkPolicy', np.metadata?.namespace ?? 'default', np.metadata?.name)} ${type === 'Ingress' ? 'ingress' : 'egress'}[${i}]`;
      for (const rule of translateRule(np, r.peers, r.ports, type, endpoint, { origin, field }, ctx)) {
        rules.push(...withRedirects(rule, redirects, ctx.proxyPort));
      }
    });
  }
  return { enforced: true, rules };
}

/** One NetworkPolicy rule as IR rules: usually one, several when egress named ports resolve per peer. */
function translateRule(
  np: NetworkPolicy,
  peerList: readonly INetworkPolicyPeer[] | undefined,
  portList: readonly INetworkPolicyPort[] | undefined,
  type: 'Ingress' | 'Egress',
  endpoint: PodInfo,
  where: { readonly origin: string; readonly field: string },
  ctx: Context,
): PolicyRule[] {
  const { origin } = where;
  const namespace = np.metadata?.namespace ?? 'default';
  const peers: readonly number[] | 'any' =
    peerList === undefined || peerList.length === 0
      ? 'any'
      : peerIdentities(np, peerList, namespace, where.field, ctx);
  if (peers !== 'any' && peers.length === 0) return []; // its peers match nothing (yet)
  if (portList === undefined || portList.length === 0)
    return [{ peers, ports: [], verdict: 'allow', origin }];

  const numeric: PolicyPort[] = [];
  const named: { name: string; protocol: PolicyProtocol }[] = [];
  for (const p of portList) {
    const protocol: PolicyProtocol = p.protocol ?? 'TCP';
    if (typeof p.port === 'string') named.push({ name: p.port, protocol });
    else if (p.port === undefined) numeric.push({ protocol });
    else if (p.endPort !== undefined && p.endPort > p.port)
      numeric.push({ protocol, port: p.port, endPort: p.endPort });
    else numeric.push({ protocol, port: p.port });
  }
  const rules: PolicyRule[] = [];
  // Ingress: the names are the selected pod's own ports; they resolve once.
  if (type === 'Ingress') {
    const ports = [...numeric, ...resolveNamed(named, [endpoint])];
    return ports.length === 0 ? [] : [{ peers, ports: dedupePorts(ports), verdict: 'allow', origin }];
  }
  // Egress: the names are each destination pod's ports, which may differ between identities.
  if (numeric.length > 0) rules.push({ peers, ports: dedupePorts(numeric), verdict: 'allow', origin });
  if (named.length > 0) {
    const candidates =
      peers === 'any'
        ? ctx.labelIdentities
        : ctx.labelIdentities.filter((li) => (peers as readonly number[]).includes(li.id));
    const groups = new Map<string, { ports: PolicyPort[]; ids: number[] }>();
    for (const li of candidates) {
      const ports = dedupePorts(resolveNamed(named, li.pods));
      if (ports.length === 0) continue;
      const key = JSON.stringify(ports);
      const g = groups.get(key) ?? { ports, ids: [] };
      g.ids.push(li.id);
      groups.set(key, g);
    }
    for (const g of [...groups.values()].sort((a, b) => (a.ids[0] ?? 0) - (b.ids[0] ?? 0))) {
      rules.push({ peers: g.ids.sort((a, b) => a - b), ports: g.ports, verdict: 'allow', origin });
    }
  }
  return rules;
}

/** Container ports of `pods` by name and protocol. */
function resolveNamed(
  named: readonly { name: string; protocol: PolicyProtocol }[],
  pods: readonly PodInfo[],
): PolicyPort[] {
  const out: PolicyPort[] = [];
  for (const n of named) {
    for (const p of pods) {
      for (const c of p.pod.spec?.containers ?? []) {
        for (const cp of c.ports ?? []) {
          if (cp.name === n.name && (cp.protocol ?? 'TCP') === n.protocol)
            out.push({ protocol: n.protocol, port: cp.containerPort });
        }
      }
    }
  }
  return out;
}

const PROTOCOL_ORDER: Record<PolicyProtocol, number> = { TCP: 0, UDP: 1, SCTP: 2 };

function dedupePorts(ports: readonly PolicyPort[]): PolicyPort[] {
  const seen = new Map<string, PolicyPort>();
  for (const p of ports) seen.set(`${p.protocol}/${p.port ?? ''}/${p.endPort ?? ''}`, p);
  return [...seen.values()].sort(
    (a, b) =>
      PROTOCOL_ORDER[a.protocol] - PROTOCOL_ORDER[b.protocol] ||
      (a.port ?? 0) - (b.port ?? 0) ||
      (a.endPort ?? 0) - (b.endPort ?? 0),
  );
}

/** The identities the peers of one rule stand for, sorted. */
function peerIdentities(
  np: NetworkPolicy,
  peers: readonly INetworkPolicyPeer[],
  namespace: string,
  field: string,
  ctx: Context,
): number[] {
  const ids = new Set<number>();
  peers.forEach((peer, i) => {
    if (peer.ipBlock !== undefined) {
      const cidr = parsePrefix(peer.ipBlock.cidr);
      if (cidr === undefined) return;
      const except = (peer.ipBlock.except ?? [])
        .map((e) => parsePrefix(e))
        .filter((e): e is Prefix => e !== undefined);
      // Every CIDR identity inside the block and not inside an except: the datapath's longest match
      // gives an address the identity of its longest prefix.
      for (const c of ctx.cidrs) {
        if (prefixContains(cidr, c.prefix) && !except.some((e) => prefixContains(e, c.prefix))) ids.add(c.id);
      }
      return;
    }
    const pods = peer.podSelector as LabelSelector | undefined;
    const namespaces = peer.namespaceSelector as LabelSelector | undefined;
    const excluded = pods === undefined ? [] : selectorKeys(pods).filter((k) => NON_SECURITY_LABELS.has(k));
    if (excluded.length > 0) {
      ctx.diagnostics.push({
        code: NetpolCode.ExcludedLabel,
        severity: 'error',
        object: objectKey('NetworkPolicy', namespace, np.metadata?.name),
        field: `${field}[${i}].podSelector`,
        message: `selects on ${excluded.join(', ')}, which Skein leaves out of identities (one per revision or per pod); this peer selects nothing`,
      });
      return;
    }
    for (const li of ctx.labelIdentities) {
      const inNamespace =
        namespaces === undefined
          ? li.namespace === namespace
          : matchesSelector(namespaces, li.namespaceLabels);
      if (inNamespace && (pods === undefined || matchesSelector(pods, li.podLabels))) ids.add(li.id);
    }
  });
  return [...ids].sort((a, b) => a - b);
}

// --- redirects -------------------------------------------------------------------------------------

function redirectPorts(np: NetworkPolicy, ctx: Context): number[] {
  const value = np.metadata?.annotations?.[REDIRECT_ANNOTATION];
  if (value === undefined) return [];
  const parts = value.split(',').map((s) => s.trim());
  const ports = parts.map(Number);
  const object = objectKey('NetworkPolicy', np.metadata?.namespace ?? 'default', np.metadata?.name);
  const field = `metadata.annotations.${REDIRECT_ANNOTATION}`;
  if (parts.some((s) => !/^[0-9]+$/.test(s)) || ports.some((p) => p < 1 || p > 65535)) {
    ctx.diagnostics.push({
      code: NetpolCode.InvalidAnnotation,
      severity: 'error',
      object,
      field,
      message: `must be a comma-separated list of TCP ports in 1..65535, not ${JSON.stringify(value)}; nothing is redirected`,
    });
    return [];
  }
  if (!ctx.l7Proxy) {
    ctx.diagnostics.push({
      code: NetpolCode.RedirectDisabled,
      severity: 'warning',
      object,
      field,
      message:
        'the L7 proxy is off on this node (l7Proxy: false); the traffic its rules allow is allowed without the proxy',
    });
    return [];
  }
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * A rule, plus a redirect rule for each redirected port it allows. The redirect wins over the allow in
 * the datapath; an allow entry for exactly that port is dropped, so the IR says what happens.
 */
function withRedirects(rule: PolicyRule, ports: readonly number[], proxyPort: number): PolicyRule[] {
  const covered = ports.filter(
    (port) =>
      rule.ports.length === 0 ||
      rule.ports.some(
        (p) =>
          p.protocol === 'TCP' && (p.port === undefined || (p.port <= port && port <= (p.endPort ?? p.port))),
      ),
  );
  if (covered.length === 0) return [rule];
  const rest = rule.ports.filter(
    (p) =>
      !(p.protocol === 'TCP' && p.endPort === undefined && p.port !== undefined && covered.includes(p.port)),
  );
  const out: PolicyRule[] = rule.ports.length > 0 && rest.length === 0 ? [] : [{ ...rule, ports: rest }];
  out.push({
    peers: rule.peers,
    ports: covered.map((port) => ({ protocol: 'TCP', port })),
    verdict: 'redirect',
    proxyPort,
    origin: `${rule.origin} (${REDIRECT_ANNOTATION})`,
  });
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
