/**
 * The agent's eBPF datapath loop: the informers' objects → the services and policy IRs (pure
 * translators) → the maps and programs of this node (the reconcilers write only what changed), and the
 * node Envoy's transparent listener for L7 redirects (handed to the control plane as IR). Loaded only by
 * `skein agent` (src/agent.ts imports this module dynamically), so `skein up` never loads the addon.
 *
 * Each update runs after the last one finished, on the newest objects (updates that arrive meanwhile
 * collapse into one). Services are re-planned when Services or EndpointSlices changed, policy when Pods,
 * Namespaces, NetworkPolicies or the Node did (or a retry is due). A failed step keeps what the maps
 * hold, is logged with its code, and is retried on the next change or after RETRY_MS.
 */

import { existsSync, readdirSync, statfsSync } from 'node:fs';
import path from 'node:path';
import { Counter, type Registry } from 'prom-client';
import { BPF_OBJECT_DIR, bpfObjectPath, loadAddon, requireSupport } from './datapath/addon.js';
import type { Reason } from './datapath/codecs/flow.js';
import { DatapathError, DatapathErrorCode } from './datapath/errors.js';
import { FlowLog } from './datapath/flowLog.js';
import { IdentityStore } from './datapath/identityStore.js';
import { interfaceIndexes, routeInterfaces, tcpListening } from './datapath/interfaces.js';
import { cgroupLinkDir, detachCgroupLinks, LB_LINK_DIR, LbDatapath } from './datapath/lb.js';
import { LbReconcileErrorCode } from './datapath/lbPlan.js';
import { LbReconciler } from './datapath/lbReconcile.js';
import {
  DEFAULT_MARKS,
  type FlowEventLevel,
  PolicyDatapath,
  PolicyReconcileError,
} from './datapath/policy.js';
import { installProxyRouting, proxyRoutingState, removeProxyRouting } from './datapath/proxyRouting.js';
import type { Logger } from './log.js';
import { emptyIr, type Ir, type IrListener } from './model/ir.js';
import type { PolicyIr } from './model/policy.js';
import { proxyIr } from './model/proxyIr.js';
import { translatePolicy } from './policy/translate.js';
import { createServicesTranslator } from './services/translate.js';
import { type Diagnostic, formatDiagnostic, type ObjectSet, type Pod } from './sources/objects.js';

export interface DatapathSettings {
  readonly bpffsRoot: string;
  readonly pinRoot: string;
  readonly cgroupRoot: string;
  readonly stateDir: string;
  /** The network namespace (a path) of the pods' host-side interfaces; default the agent's own. */
  readonly netns?: string;
  /** kubeProxyReplacement: balance Service ClusterIPs at the socket. */
  readonly serviceLb: boolean;
  /** Redirect what policy asks for to the node Envoy. */
  readonly l7Proxy: boolean;
  readonly proxyPort: number;
  readonly flowEvents: FlowEventLevel;
  /** Where the compiled BPF objects are; default dist/bpf. */
  readonly objectDir?: string;
  /** How long a new transparent listener may take to bind before redirects to it go in anyway. */
  readonly proxyWaitMs?: number;
}

export interface AgentDatapathDeps {
  readonly nodeName: string;
  readonly settings: DatapathSettings;
  readonly logger: Logger;
  readonly registry: Registry;
  /**
   * The node Envoy must serve this IR (the transparent listeners) from now on. Called before redirects
   * to a new listener are programmed, and after redirects to a removed one are gone.
   */
  readonly publishProxy: (ir: Ir) => void;
}

/** The Node, as far as the datapath reads it: its addresses are the host identity's. */
export interface NodeAddresses {
  readonly status?: { readonly addresses?: readonly { readonly type?: string; readonly address?: string }[] };
}

export interface AgentDatapathStatus {
  readonly enabled: true;
  readonly pinRoot: string;
  readonly cgroupRoot: string | null;
  readonly serviceLb: boolean;
  readonly l7Proxy: boolean;
  readonly attachMode: string | null;
  readonly services: number;
  readonly endpoints: number;
  readonly identities: number;
  readonly proxyListeners: readonly string[];
  readonly updates: number;
  readonly lastUpdate: {
    readonly at: string;
    readonly durationMs: number;
    readonly errors: readonly string[];
  } | null;
  readonly flowEvents: { readonly events: number; readonly drops: number };
}

/** A reconcile of the datapath failed; the maps keep what they had and it is tried again. */
export const DATAPATH_UPDATE_FAILED = 'SKEIN_AGENT_DATAPATH_FAILED';
/** Several pods' addresses route to one interface (a bridge): none of them can be enforced there. */
export const SHARED_INTERFACE = 'SKEIN_AGENT_SHARED_INTERFACE';
/** The node Envoy did not bind a transparent listener in time: redirected flows drop until it does. */
export const PROXY_NOT_LISTENING = 'SKEIN_AGENT_PROXY_NOT_LISTENING';

const RETRY_MS = 5_000;
const CGROUP2_SUPER_MAGIC = 0x63677270;

interface Job {
  readonly objects: ObjectSet;
  readonly node: NodeAddresses | undefined;
}

export class AgentDatapath {
  readonly #d: AgentDatapathDeps;
  readonly #policy: PolicyDatapath;
  readonly #lb: LbDatapath | undefined;
  readonly #lbReconciler: LbReconciler | undefined;
  readonly #flows: FlowLog;
  readonly #identities: IdentityStore;
  readonly #services = createServicesTranslator();
  readonly #updates: Counter<'result'>;
  #pending: Job | undefined;
  #running: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Inputs of the last successful step, by identity. */
  #servicesInput: readonly unknown[] = [];
  #policyInput: readonly unknown[] = [];
  #policyDue = true;
  #servicesDue = true;
  #policyIr: PolicyIr | undefined;
  #proxy: Ir = emptyIr;
  #proxyKey = JSON.stringify(emptyIr);
  #routing: boolean;
  #serviceCount = 0;
  #updateCount = 0;
  #lastUpdate: AgentDatapathStatus['lastUpdate'] = null;
  /** Lines logged once: per step (diagnostics while they persist), and warnings for good. */
  readonly #reported = new Map<string, Set<string>>();

  private constructor(
    deps: AgentDatapathDeps,
    parts: {
      policy: PolicyDatapath;
      lb: LbDatapath | undefined;
      identities: IdentityStore;
      routing: boolean;
    },
  ) {
    this.#d = deps;
    this.#policy = parts.policy;
    this.#lb = parts.lb;
    this.#lbReconciler = parts.lb === undefined ? undefined : new LbReconciler(parts.lb);
    this.#identities = parts.identities;
    this.#routing = parts.routing;
    this.#flows = new FlowLog(parts.policy.flows(), { logger: deps.logger, registry: deps.registry });
    this.#updates = new Counter({
      name: 'skein_datapath_updates_total',
      help: 'Datapath updates (translation and map writes), by result',
      labelNames: ['result'],
      registers: [deps.registry],
    });
    const policy = parts.policy;
    // The kernel's own per-reason counters (every decision, whatever the flow event level), read at scrape.
    new Counter({
      name: 'skein_policy_packets_total',
      help: 'Packets the policy programs decided, by reason (the kernel counters of skein_policy_stats)',
      labelNames: ['reason'],
      registers: [deps.registry],
      collect() {
        this.reset();
        for (const [reason, c] of policy.counters()) this.inc({ reason }, Number(c.packets));
      },
    });
  }

  /**
   * Loads and attaches what the settings ask for. Throws DatapathError: SKEIN_BPF_UNAVAILABLE (this
   * machine cannot load BPF), SKEIN_BPF_NOT_BUILT (addon or objects missing), SKEIN_BPF_NO_BPFFS,
   * SKEIN_BPF_NO_CGROUP2, or a load/attach failure; nothing stays half attached.
   */
  static async start(deps: AgentDatapathDeps): Promise<AgentDatapath> {
    const s = deps.settings;
    requireSupport();
    loadAddon();
    const objectPath = (name: string): string => {
      if (s.objectDir === undefined) return bpfObjectPath(name);
      const file = path.join(s.objectDir, `${name}.bpf.o`);
      if (!existsSync(file)) {
        throw new DatapathError(
          DatapathErrorCode.NotBuilt,
          `the BPF object ${file} is not built: run \`node scripts/setup.mjs bpf\` (objects are looked for in ${s.objectDir}, not ${BPF_OBJECT_DIR})`,
        );
      }
      return file;
    };
    const policyObject = objectPath('policy');
    const lbObject = s.serviceLb ? objectPath('lb') : undefined;
    const identities = await IdentityStore.open(s.stateDir, (m) => deps.logger.warn(m));
    const routing = {
      mark: DEFAULT_MARKS.toProxy,
      mask: DEFAULT_MARKS.mask,
      ...(s.netns === undefined ? {} : { netns: s.netns }),
    };
    const policy = PolicyDatapath.load({
      pinRoot: s.pinRoot,
      objectPath: policyObject,
      flowEvents: s.flowEvents,
      ...(s.netns === undefined ? {} : { netns: s.netns }),
    });
    let lb: LbDatapath | undefined;
    try {
      if (lbObject !== undefined) {
        checkCgroup2(s.cgroupRoot);
        // The socket programs report each translation and refusal (one event per connect, like the
        // policy programs' first packet of a flow) from the `flows` level on.
        const lbEvents = s.flowEvents === 'flows' || s.flowEvents === 'packets';
        lb = LbDatapath.load({ pinRoot: s.pinRoot, objectPath: lbObject, lbEvents });
        const linked = lb.syncCgroupLinks(s.cgroupRoot, cgroupLinkDir(s.pinRoot, s.cgroupRoot));
        deps.logger.info(
          `service load-balancing attached to cgroup ${s.cgroupRoot} (${linked.attached} attached, ${linked.updated} swapped in, ${linked.detached} detached elsewhere)`,
        );
      } else {
        // kubeProxyReplacement is off: nothing of an earlier run may keep balancing.
        const dir = path.join(s.pinRoot, LB_LINK_DIR);
        if (existsSync(dir)) for (const d of readdirSync(dir)) detachCgroupLinks(path.join(dir, d));
      }
      const installed = (await proxyRoutingState(routing)).some((r) => r.rule);
      const dp = new AgentDatapath(deps, { policy, lb, identities, routing: installed });
      dp.#flows.start();
      return dp;
    } catch (e) {
      lb?.close();
      policy.close();
      throw e;
    }
  }

  /** Brings the datapath to these objects (soon: after the update in progress, if any). */
  update(objects: ObjectSet, node: NodeAddresses | undefined): void {
    if (this.#stopped) return;
    this.#pending = { objects, node };
    this.#running ??= this.#drain();
  }

  /** Resolves once no update is pending or running (for tests and for stop). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  /** The proxy IR the node Envoy should serve now. */
  get proxy(): Ir {
    return this.#proxy;
  }

  get policyIr(): PolicyIr | undefined {
    return this.#policyIr;
  }

  status(): AgentDatapathStatus {
    const s = this.#d.settings;
    return {
      enabled: true,
      pinRoot: s.pinRoot,
      cgroupRoot: this.#lb === undefined ? null : s.cgroupRoot,
      serviceLb: this.#lb !== undefined,
      l7Proxy: s.l7Proxy,
      attachMode: this.#policy.attachMode ?? null,
      services: this.#serviceCount,
      endpoints: this.#policyIr?.endpoints.length ?? 0,
      identities: this.#identities.previous.size,
      proxyListeners: this.#proxy.listeners.map((l) => l.name),
      updates: this.#updateCount,
      lastUpdate: this.#lastUpdate,
      flowEvents: this.#flows.stats,
    };
  }

  /** Stops the loop and closes this process's handles; what is attached and pinned stays. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    await this.idle();
    await this.#flows.stop();
    this.#lb?.close();
    this.#policy.close();
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending !== undefined && !this.#stopped) {
        const job = this.#pending;
        this.#pending = undefined;
        await this.#apply(job);
      }
    } finally {
      // In the same step as the last check of #pending: an update() after it starts a new drain.
      this.#running = undefined;
    }
  }

  async #apply(job: Job): Promise<void> {
    const t0 = performance.now();
    const errors: string[] = [];
    const { objects } = job;
    const servicesInput = [objects.services, objects.endpointSlices];
    if (
      this.#lbReconciler !== undefined &&
      (this.#servicesDue || !sameItems(servicesInput, this.#servicesInput))
    ) {
      try {
        await this.#applyServices(objects);
        this.#servicesInput = servicesInput;
        this.#servicesDue = false;
      } catch (e) {
        this.#servicesDue = true;
        errors.push(`services: ${message(e)}`);
      }
    }
    const policyInput = [objects.pods, objects.namespaces, objects.networkPolicies, job.node];
    if (this.#policyDue || !sameItems(policyInput, this.#policyInput)) {
      try {
        // Due again (a retry) when a pod of this node had no interface yet.
        this.#policyDue = await this.#applyPolicy(job);
        this.#policyInput = policyInput;
      } catch (e) {
        // An IR the datapath refuses is refused again until the input changes; anything else is retried.
        this.#policyDue = !(e instanceof PolicyReconcileError);
        if (!this.#policyDue) this.#policyInput = policyInput;
        errors.push(`policy: ${message(e)}`);
      }
    }
    this.#updateCount++;
    this.#updates.inc({ result: errors.length === 0 ? 'ok' : 'failed' });
    this.#lastUpdate = { at: new Date().toISOString(), durationMs: performance.now() - t0, errors };
    for (const e of errors)
      this.#d.logger.error(`${DATAPATH_UPDATE_FAILED}: ${e} (the maps keep what they had; retried)`);
    if ((errors.length > 0 || this.#policyDue) && !this.#stopped) {
      if (this.#retry !== undefined) clearTimeout(this.#retry);
      this.#retry = setTimeout(() => {
        this.#retry = undefined;
        if (this.#pending === undefined) this.update(job.objects, job.node);
      }, RETRY_MS);
      this.#retry.unref();
    }
  }

  async #applyServices(objects: ObjectSet): Promise<void> {
    const { ir, diagnostics } = this.#services.translate(objects);
    this.#reportOnce('services', diagnostics);
    const report = await (this.#lbReconciler as LbReconciler).reconcile(ir);
    this.#serviceCount = ir.services.length;
    // A service the maps cannot take (bad IR, no room) keeps what it had until its input changes; only
    // a refused map write is worth trying again as it is.
    for (const e of report.errors) {
      if (e.code !== LbReconcileErrorCode.MapWriteFailed) this.#warnOnce(`services: ${e.code}: ${e.message}`);
    }
    const failed = report.errors.filter((e) => e.code === LbReconcileErrorCode.MapWriteFailed);
    if (failed.length > 0) throw new Error(failed.map((e) => `${e.code}: ${e.message}`).join('; '));
    if (report.changed.length > 0) {
      this.#d.logger.debug(
        `service maps: ${report.changed.length} services changed (${report.written.services} written, ${report.deleted.services} deleted)`,
      );
    }
  }

  /** True when it should run again soon (a local pod has no interface yet). */
  async #applyPolicy(job: Job): Promise<boolean> {
    const s = this.#d.settings;
    const { objects } = job;
    const local = localPods(objects.pods, this.#d.nodeName);
    const interfaces = await this.#podInterfaces(local);
    const nodeAddresses = (job.node?.status?.addresses ?? [])
      .filter((a) => a.type === 'InternalIP' || a.type === 'ExternalIP')
      .map((a) => a.address)
      .filter((a): a is string => a !== undefined);
    const result = translatePolicy(objects, {
      nodeName: this.#d.nodeName,
      nodeAddresses,
      interfaces,
      previousIdentities: this.#identities.previous,
      proxyPort: s.proxyPort,
      l7Proxy: s.l7Proxy,
    });
    this.#reportOnce('policy', result.diagnostics);
    await this.#identities.save(result.identities);

    const proxy = proxyIr(result.ir, { upstreamMark: DEFAULT_MARKS.fromProxy });
    const proxyKey = JSON.stringify(proxy);
    const redirects = proxy.listeners.length > 0;
    // Make before break: Envoy serves a new listener before any flow is redirected to it.
    const added = proxy.listeners.filter((l) => !this.#proxy.listeners.some((o) => o.name === l.name));
    if (added.length > 0) {
      this.#d.publishProxy(unionProxy(this.#proxy, proxy));
      await this.#waitForListeners(added);
    }
    if (redirects && !this.#routing) {
      await installProxyRouting(this.#routingOptions());
      this.#routing = true;
    }
    const result2 = this.#policy.reconcile(result.ir, await interfaceIndexes(s.netns));
    this.#policyIr = result.ir;
    const w = result2.written;
    const del = result2.deleted;
    this.#d.logger.debug(
      `policy maps: ${result.ir.endpoints.length} endpoints, ${result.ir.identities.length} identities; written ${w.endpoints}/${w.ipcache}/${w.cidrs}/${w.policy}, deleted ${del.endpoints}/${del.ipcache}/${del.cidrs}/${del.policy} (endpoints/ipcache/cidrs/policy); links ${result2.attached} attached, ${result2.updated} swapped, ${result2.detached} detached`,
    );
    if (result2.missing.length > 0)
      this.#d.logger.debug(`policy: interfaces missing for ${result2.missing.join(', ')}`);
    if (!redirects && this.#routing) {
      await removeProxyRouting(this.#routingOptions());
      this.#routing = false;
    }
    if (proxyKey !== this.#proxyKey || added.length > 0) {
      this.#proxy = proxy;
      this.#proxyKey = proxyKey;
      this.#d.publishProxy(proxy);
    }
    return local.some((p) => !p.addresses.some((a) => interfaces.has(a))) || result2.missing.length > 0;
  }

  #routingOptions(): { mark: number; mask: number; netns?: string } {
    const netns = this.#d.settings.netns;
    return {
      mark: DEFAULT_MARKS.toProxy,
      mask: DEFAULT_MARKS.mask,
      ...(netns === undefined ? {} : { netns }),
    };
  }

  async #waitForListeners(listeners: readonly IrListener[]): Promise<void> {
    const deadline = performance.now() + (this.#d.settings.proxyWaitMs ?? 5_000);
    const ports = [...new Set(listeners.map((l) => l.port))];
    for (const port of ports) {
      for (;;) {
        if (await tcpListening(port, this.#d.settings.netns)) break;
        if (performance.now() > deadline || this.#stopped) {
          this.#d.logger.warn(
            `${PROXY_NOT_LISTENING}: nothing listens on the proxy port ${port} yet (is the node Envoy connected?); redirected flows are dropped (${'proxyUnavailable' satisfies keyof typeof Reason}) until it does`,
          );
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** The host-side interface of each local pod address, by route; one shared by several pods is none. */
  async #podInterfaces(local: readonly LocalPod[]): Promise<Map<string, string>> {
    const routes = await routeInterfaces(
      local.flatMap((p) => p.addresses),
      this.#d.settings.netns,
    );
    const owners = new Map<string, Set<string>>();
    for (const p of local) {
      for (const a of p.addresses) {
        const dev = routes.get(a);
        if (dev !== undefined) owners.set(dev, (owners.get(dev) ?? new Set()).add(p.key));
      }
    }
    const out = new Map<string, string>();
    for (const [address, dev] of routes) {
      const pods = owners.get(dev);
      if (pods !== undefined && pods.size > 1) {
        this.#warnOnce(
          `${SHARED_INTERFACE}: ${dev} routes to several pods (${[...pods].sort().join(', ')}): a bridge, not a pod's own interface; their policy is not enforced`,
        );
        continue;
      }
      out.set(address, dev);
    }
    return out;
  }

  #warnOnce(line: string): void {
    const seen = this.#reported.get('warnings') ?? new Set<string>();
    this.#reported.set('warnings', seen);
    if (seen.has(line)) return;
    seen.add(line);
    this.#d.logger.warn(line);
  }

  /** Logs each distinct diagnostic of a step once while it persists (a rebuild loop does not flood). */
  #reportOnce(step: string, diagnostics: readonly Diagnostic[]): void {
    const before = this.#reported.get(step) ?? new Set<string>();
    const now = new Set<string>();
    for (const d of diagnostics) {
      const line = `${step}: ${formatDiagnostic(d)}`;
      now.add(line);
      if (before.has(line)) continue;
      if (d.severity === 'error') this.#d.logger.error(line);
      else this.#d.logger.warn(line);
    }
    this.#reported.set(step, now);
  }
}

interface LocalPod {
  readonly key: string;
  readonly addresses: readonly string[];
}

/** This node's pods that hold addresses of their own (not host-network, not finished). */
function localPods(pods: readonly Pod[], nodeName: string): LocalPod[] {
  const out: LocalPod[] = [];
  for (const p of pods) {
    const phase = p.status?.phase;
    if (
      p.spec?.nodeName !== nodeName ||
      p.spec?.hostNetwork === true ||
      phase === 'Succeeded' ||
      phase === 'Failed'
    )
      continue;
    const ips = (p.status?.podIPs ?? []).map((i) => i.ip).filter((ip): ip is string => ip !== undefined);
    if (ips.length === 0 && p.status?.podIP !== undefined) ips.push(p.status.podIP);
    if (ips.length > 0)
      out.push({ key: `${p.metadata?.namespace ?? 'default'}/${p.metadata?.name ?? ''}`, addresses: ips });
  }
  return out;
}

/** Both IRs' listeners (by name), for the moment a new one must exist before an old one goes. */
function unionProxy(a: Ir, b: Ir): Ir {
  if (a.listeners.length === 0) return b;
  const listeners = new Map<string, IrListener>();
  for (const l of [...a.listeners, ...b.listeners]) listeners.set(l.name, l);
  return {
    listeners: [...listeners.values()].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)),
    backends: b.backends,
    secrets: [],
  };
}

function checkCgroup2(dir: string): void {
  let type: number;
  try {
    type = statfsSync(dir).type;
  } catch (e) {
    throw new DatapathError(
      DatapathErrorCode.NoCgroup2,
      `cannot attach the service load-balancing programs to ${dir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : message(e)}`,
    );
  }
  if (type !== CGROUP2_SUPER_MAGIC) {
    throw new DatapathError(
      DatapathErrorCode.NoCgroup2,
      `cannot attach the service load-balancing programs to ${dir}: it is not a cgroup v2 directory (datapath.cgroupRoot; /sys/fs/cgroup/unified on hybrid hosts)`,
    );
  }
}

function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
