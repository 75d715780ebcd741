import type { Logger } from '../log.js';
import { XdsErrorCode } from './errors.js';
import type { XdsAckEvent, XdsSendEvent } from './events.js';
import { isTypeUrl, TypeUrl, typeShortName } from './proto.js';
import type { ResourceKey, XdsResource } from './resource.js';
import type { Snapshot } from './snapshot.js';
import type { StreamKind, XdsNackRecord, XdsStreamStatus, XdsTypeStatus } from './status.js';
import {
  computeTarget,
  type DepContext,
  depsReady,
  type Held,
  held,
  heldVersion,
  parentsOf,
  referencedKeys,
  refKey,
  sameHeld,
} from './target.js';
import {
  type DeltaRequest,
  type ErrorDetail,
  encodeDeltaResponse,
  encodeSotwResponse,
  type NodeInfo,
  type SotwRequest,
} from './wire.js';

/**
 * One xDS stream's protocol state machine, for both variants (state of the world and delta). It owns no
 * socket: requests come in through `handleSotw`/`handleDelta`, snapshots through `setSnapshot`, and
 * responses leave through `hooks.send`. The server wires it to a gRPC call.
 *
 * Per type it tracks what the client holds (`held`, in-flight response included), what it ACKed, the
 * response awaiting an answer, and the last rejected target. At most one response per type is in flight:
 * the next one is computed when the client has answered, from what it then holds.
 */

/**
 * The push order on aggregated streams. Clusters and their endpoints first, so that routes can use them;
 * secrets before listeners; listeners before the route configurations they name. Every pass visits all
 * types in this order, and the dependency check holds back what must wait for an ACK.
 */
export const pushOrder: readonly TypeUrl[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Secret,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
];

/** Only these types have wildcard (subscribe-to-all) semantics for an empty subscription. */
export const wildcardTypes: ReadonlySet<TypeUrl> = new Set([TypeUrl.Listener, TypeUrl.Cluster]);

export interface StreamHooks {
  readonly send: (bytes: Buffer, event: XdsSendEvent) => void;
  readonly ack: (event: XdsAckEvent) => void;
  readonly nack: (record: XdsNackRecord) => void;
}

/**
 * What the clients of a node group have accepted and rejected, shared by the group's streams (the
 * SnapshotCache implements it). A version one client NACKed is not offered to the others, or to the same
 * client after it reconnects (a restarted Envoy): they get the last version a client of the group
 * ACKed, or nothing for a resource that never had a good version. The last good config stays in force
 * everywhere, not only on the stream that saw the NACK.
 */
export interface ResourceVerdicts {
  accepted(group: string, resources: Iterable<XdsResource>): void;
  rejected(group: string, resources: Iterable<XdsResource>): void;
  /** What to offer in place of `r`: `r`, an older accepted version, or undefined to withhold it. */
  offer(group: string, r: XdsResource): XdsResource | undefined;
}

export interface XdsStreamOptions {
  readonly id: number;
  readonly kind: StreamKind;
  readonly delta: boolean;
  /** The one type of a per-type stream (LDS, CDS, …); undefined for aggregated streams. */
  readonly typeUrl: TypeUrl | undefined;
  readonly peer: string;
  /** `control_plane.identifier` in every response, if set. */
  readonly controlPlaneId: string | undefined;
  readonly logger: Logger;
  readonly hooks: StreamHooks;
  /** Group-wide memory of accepted and rejected versions; none: every stream judges alone. */
  readonly verdicts?: ResourceVerdicts;
}

interface Pending {
  readonly nonce: string;
  readonly target: ReadonlyMap<string, Held>;
  readonly version: string;
}

class TypeState {
  /**
   * Whether a response is the type's whole state at the client. True for delta (removals are explicit)
   * and for SotW LDS/CDS (absence means deletion). SotW EDS/RDS/SDS responses only update: the client
   * keeps a resource left out until it unsubscribes, so leaving one out removes nothing.
   */
  readonly fullState: boolean;
  /** The client has sent at least one request for this type. */
  requested = false;
  wildcard = false;
  names = new Set<string>();
  held = new Map<string, Held>();
  acked = new Map<string, Held>();
  pending: Pending | undefined;
  /**
   * The client has a state for this type from this server: a response was sent, or it reconnected with
   * a version we recognise. Until then a wildcard subscriber gets a response even if it is empty.
   */
  answered = false;
  /** The latest nonce sent for this type: a request carrying another one is stale. */
  lastNonce: string | undefined;
  /** Version of the last rejected target: not sent again until the target changes. */
  rejected: string | undefined;
  ackedVersion: string | undefined;
  sentVersion: string | undefined;
  lastNack: XdsNackRecord | undefined;

  constructor(
    readonly typeUrl: TypeUrl,
    readonly delta: boolean,
  ) {
    this.fullState = delta || wildcardTypes.has(typeUrl);
  }

  /** What the client holds after applying `response`. */
  apply(before: ReadonlyMap<string, Held>, response: ReadonlyMap<string, Held>): Map<string, Held> {
    return this.fullState ? new Map(response) : new Map([...before, ...response]);
  }

  /** Whether sending `target` would change anything at the client. */
  changes(target: ReadonlyMap<string, Held>): boolean {
    if (this.fullState) return !sameHeld(target, this.held);
    for (const [name, h] of target) if (this.held.get(name)?.version !== h.version) return true;
    return false;
  }

  subscribed(name: string): boolean {
    return this.wildcard || this.names.has(name);
  }

  /**
   * Forgets what the client no longer subscribes to, where the client drops it itself: in delta, and for
   * SotW EDS/RDS/SDS. A SotW LDS/CDS client keeps what it has until the next response, which is the full
   * set and so removes what was unsubscribed.
   */
  prune(): void {
    if (this.wildcard || (this.fullState && !this.delta)) return;
    for (const name of [...this.held.keys()]) if (!this.names.has(name)) this.held.delete(name);
    for (const name of [...this.acked.keys()]) if (!this.names.has(name)) this.acked.delete(name);
  }
}

export class XdsStream {
  readonly id: number;
  readonly kind: StreamKind;
  readonly #delta: boolean;
  readonly #fixedType: TypeUrl | undefined;
  /** Aggregated streams order sends across types; per-type streams cannot, and send what is subscribed. */
  readonly #ordered: boolean;
  readonly #order: readonly TypeUrl[];
  readonly #peer: string;
  readonly #controlPlaneId: string | undefined;
  readonly #hooks: StreamHooks;
  readonly #verdicts: ResourceVerdicts | undefined;
  #log: Logger;
  readonly #connectedAt = new Date().toISOString();
  readonly #types = new Map<TypeUrl, TypeState>();
  readonly #unknownTypesLogged = new Set<string>();
  #node: NodeInfo | undefined;
  #group: string | undefined;
  #snapshot: Snapshot | undefined;
  #nonce = 0;
  #closed = false;

  constructor(options: XdsStreamOptions) {
    this.id = options.id;
    this.kind = options.kind;
    this.#delta = options.delta;
    this.#fixedType = options.typeUrl;
    this.#ordered = options.typeUrl === undefined;
    this.#order = options.typeUrl === undefined ? pushOrder : [options.typeUrl];
    this.#peer = options.peer;
    this.#controlPlaneId = options.controlPlaneId;
    this.#hooks = options.hooks;
    this.#verdicts = options.verdicts;
    this.#log = options.logger.child({ stream: options.id, kind: options.kind });
  }

  /** Whether `bind` has been called (the first request named the node). */
  get bound(): boolean {
    return this.#group !== undefined;
  }

  get nodeId(): string | undefined {
    return this.#node?.id;
  }

  get group(): string | undefined {
    return this.#group;
  }

  /** Attaches the node and its group's current snapshot. Called once, before the first request is handled. */
  bind(node: NodeInfo, group: string, snapshot: Snapshot | undefined): void {
    this.#node = node;
    this.#group = group;
    this.#snapshot = snapshot;
    this.#log = this.#log.child({ node: node.id, group });
  }

  /** A new snapshot for the stream's group. */
  setSnapshot(snapshot: Snapshot): void {
    this.#snapshot = snapshot;
    this.#pump();
  }

  /** Stops all sending; the state stays readable. */
  close(): void {
    this.#closed = true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  handleSotw(req: SotwRequest): void {
    const st = this.#typeState(req.typeUrl);
    if (st === undefined) return;
    // Stale: the client has not seen our latest response of this type yet. Its ACK of that response will
    // carry its current subscription, so nothing in this request is lost by ignoring it.
    if (st.lastNonce !== undefined && req.responseNonce !== st.lastNonce) {
      this.#log.debug({ type: typeShortName[st.typeUrl], nonce: req.responseNonce }, 'stale request ignored');
      return;
    }
    if (st.pending !== undefined && req.responseNonce === st.pending.nonce) {
      if (req.errorDetail !== undefined) this.#nack(st, req.errorDetail);
      else this.#ack(st);
    }
    const first = !st.requested;
    const names = req.resourceNames.filter((n) => n !== '*');
    // Legacy wildcard: an empty list on the first request (and after, while still wildcard) of LDS/CDS.
    st.wildcard =
      req.resourceNames.includes('*') ||
      (req.resourceNames.length === 0 && wildcardTypes.has(st.typeUrl) && (first || st.wildcard));
    st.names = new Set(names);
    st.requested = true;
    st.prune();
    if (first && req.versionInfo !== '') this.#resumeSotw(st, req.versionInfo);
    this.#pump();
  }

  handleDelta(req: DeltaRequest): void {
    const st = this.#typeState(req.typeUrl);
    if (st === undefined) return;
    if (req.responseNonce !== '') {
      if (st.pending !== undefined && req.responseNonce === st.pending.nonce) {
        if (req.errorDetail !== undefined) this.#nack(st, req.errorDetail);
        else this.#ack(st);
      } else {
        // Stale ACK/NACK. Delta subscription changes are increments, so they still apply (below).
        this.#log.debug({ type: typeShortName[st.typeUrl], nonce: req.responseNonce }, 'stale nonce ignored');
      }
    }
    const first = !st.requested;
    st.requested = true;
    if (first && req.resourceNamesSubscribe.length === 0 && wildcardTypes.has(st.typeUrl)) st.wildcard = true;
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') st.wildcard = false;
      else st.names.delete(n);
    }
    if (first) {
      // A reconnecting client tells what it has, so that what is unchanged is not sent again.
      const current = this.#snapshot?.resources.get(st.typeUrl);
      for (const [name, version] of req.initialResourceVersions) {
        if (!st.subscribed(name)) continue;
        const r = current?.get(name);
        const h: Held = { version, resource: r?.version === version ? r : undefined };
        st.held.set(name, h);
        st.acked.set(name, h);
      }
      if (req.initialResourceVersions.size > 0) {
        st.ackedVersion = heldVersion(st.acked);
        st.answered = true;
      }
    }
    st.prune();
    this.#pump();
  }

  status(): XdsStreamStatus {
    const types: XdsTypeStatus[] = [];
    for (const t of pushOrder) {
      const st = this.#types.get(t);
      if (st === undefined) continue;
      types.push({
        typeUrl: t,
        type: typeShortName[t],
        wildcard: st.wildcard,
        names: [...st.names].sort(),
        ackedVersion: st.ackedVersion ?? null,
        sentVersion: st.sentVersion ?? null,
        pendingNonce: st.pending?.nonce ?? null,
        resourceCount: st.held.size,
        lastNack: st.lastNack ?? null,
      });
    }
    return {
      id: this.id,
      kind: this.kind,
      nodeId: this.#node?.id ?? null,
      group: this.#group ?? null,
      peer: this.#peer,
      connectedAt: this.#connectedAt,
      types,
    };
  }

  #typeState(typeUrl: string): TypeState | undefined {
    let t: TypeUrl;
    if (this.#fixedType !== undefined) {
      // Per-type services imply the type; clients may leave it empty.
      if (typeUrl !== '' && typeUrl !== this.#fixedType) {
        this.#warnOnce(typeUrl, XdsErrorCode.TypeMismatch, 'request for another type on a per-type stream');
        return undefined;
      }
      t = this.#fixedType;
    } else if (isTypeUrl(typeUrl)) {
      t = typeUrl;
    } else {
      this.#warnOnce(typeUrl, XdsErrorCode.UnknownType, 'request for a type Skein does not serve, ignored');
      return undefined;
    }
    let st = this.#types.get(t);
    if (st === undefined) {
      st = new TypeState(t, this.#delta);
      this.#types.set(t, st);
    }
    return st;
  }

  #warnOnce(typeUrl: string, code: XdsErrorCode, msg: string): void {
    if (this.#unknownTypesLogged.has(typeUrl)) return;
    this.#unknownTypesLogged.add(typeUrl);
    this.#log.warn({ code, typeUrl }, msg);
  }

  /**
   * SotW reconnect: the client says which version it runs. Versions are content hashes over names and
   * versions, so if it equals the version of what it should have, it has exactly that: nothing to send.
   */
  #resumeSotw(st: TypeState, versionInfo: string): void {
    const desired = this.#desired(st);
    if (desired === undefined) return;
    const set = new Map(desired.map((r) => [r.name, held(r)] as const));
    if (heldVersion(set) !== versionInfo) return;
    st.held = set;
    st.acked = new Map(set);
    st.ackedVersion = versionInfo;
    st.sentVersion = versionInfo;
    st.answered = true;
  }

  #ack(st: TypeState): void {
    const p = st.pending;
    if (p === undefined) return;
    st.pending = undefined;
    st.acked = st.apply(st.acked, p.target);
    st.prune();
    st.ackedVersion = p.version;
    st.rejected = undefined;
    st.lastNack = undefined;
    if (this.#verdicts !== undefined && this.#group !== undefined) {
      this.#verdicts.accepted(this.#group, resourcesOf(p.target.values()));
    }
    this.#hooks.ack({
      streamId: this.id,
      nodeId: this.#node?.id ?? '',
      group: this.#group ?? '',
      typeUrl: st.typeUrl,
      type: typeShortName[st.typeUrl],
      nonce: p.nonce,
      version: p.version,
    });
  }

  /** The client rejected the whole response and keeps what it last ACKed. */
  #nack(st: TypeState, detail: ErrorDetail): void {
    const p = st.pending;
    if (p === undefined) return;
    st.pending = undefined;
    st.held = new Map(st.acked);
    st.rejected = p.version;
    if (this.#verdicts !== undefined && this.#group !== undefined) {
      // Which resource Envoy objected to is only in prose; every one this response changed is suspect.
      const changed = [...p.target].filter(([name, h]) => st.acked.get(name)?.version !== h.version);
      this.#verdicts.rejected(this.#group, resourcesOf(changed.map(([, h]) => h)));
    }
    const record: XdsNackRecord = {
      streamId: this.id,
      nodeId: this.#node?.id ?? '',
      group: this.#group ?? '',
      typeUrl: st.typeUrl,
      type: typeShortName[st.typeUrl],
      nonce: p.nonce,
      version: p.version,
      keptVersion: st.ackedVersion ?? null,
      code: detail.code,
      message: detail.message,
      time: new Date().toISOString(),
    };
    st.lastNack = record;
    this.#hooks.nack(record);
  }

  /** The subscribed resources of the type present in the snapshot, or undefined without a snapshot. */
  #desired(st: TypeState): XdsResource[] | undefined {
    const byName = this.#snapshot?.resources.get(st.typeUrl);
    if (byName === undefined) return undefined;
    const out: XdsResource[] = [];
    const add = (r: XdsResource): void => {
      const offered =
        this.#verdicts !== undefined && this.#group !== undefined ? this.#verdicts.offer(this.#group, r) : r;
      if (offered !== undefined) out.push(offered);
    };
    if (st.wildcard) for (const r of byName.values()) add(r);
    else
      for (const n of st.names) {
        const r = byName.get(n);
        if (r !== undefined) add(r);
      }
    return out;
  }

  /**
   * Sends, type by type in push order, whatever the client should get next and can take now. Runs after
   * every snapshot and every request; a type with a response in flight waits for its ACK or NACK.
   */
  #pump(): void {
    const snapshot = this.#snapshot;
    if (this.#closed || snapshot === undefined) return;
    // What the client's resources refer to matters only for a name it holds but should no longer have
    // (break after make), which is rare: compute it on first need, and again after each send.
    let refs: Set<string> | undefined;
    const references = (): Set<string> => {
      refs ??= this.#ordered ? this.#references() : new Set<string>();
      return refs;
    };
    const deps: DepContext = {
      acked: (d: ResourceKey) => this.#types.get(d.typeUrl)?.acked.has(d.name) ?? false,
      holds: (d: ResourceKey) => this.#types.get(d.typeUrl)?.held.has(d.name) ?? false,
      subscribed: (d: ResourceKey) => this.#types.get(d.typeUrl)?.subscribed(d.name) ?? false,
      parents: parentsOf(snapshot),
    };
    for (const t of this.#order) {
      const st = this.#types.get(t);
      if (st === undefined || !st.requested || st.pending !== undefined) continue;
      const desired = this.#desired(st);
      if (desired === undefined) continue;
      const target = computeTarget({
        desired,
        held: st.held,
        ready: this.#ordered ? (r) => depsReady(r, deps) : () => true,
        referenced: (name) => references().has(refKey(t, name)),
      });
      // A wildcard subscriber gets a first response even when empty: Envoy waits for it to initialize.
      const firstWildcard = !st.answered && st.wildcard;
      if (!firstWildcard && !st.changes(target)) continue;
      const version = heldVersion(target);
      if (version === st.rejected) continue;
      this.#send(st, target, version);
      refs = undefined;
    }
  }

  /** Everything that what the client holds or has ACKed refers to: kept at the client (break after make). */
  #references(): Set<string> {
    const sets: ReadonlyMap<string, Held>[] = [];
    for (const st of this.#types.values()) sets.push(st.held, st.acked);
    return referencedKeys(sets);
  }

  #send(st: TypeState, target: Map<string, Held>, version: string): void {
    const nonce = String(++this.#nonce);
    const names = [...target.keys()].sort();
    let bytes: Buffer;
    let sent: string[];
    let removed: string[] = [];
    const controlPlane = this.#controlPlaneId === undefined ? {} : { controlPlane: this.#controlPlaneId };
    if (this.#delta) {
      sent = names.filter((n) => st.held.get(n)?.version !== target.get(n)?.version);
      removed = [...st.held.keys()].filter((n) => !target.has(n)).sort();
      // A changed entry always comes from the snapshot (held(r)), so it has bytes.
      const resources = sent.flatMap((n) => {
        const r = target.get(n)?.resource;
        return r === undefined ? [] : [r.deltaResource];
      });
      bytes = encodeDeltaResponse(
        {
          systemVersionInfo: version,
          typeUrl: st.typeUrl,
          nonce,
          removedResources: removed,
          ...controlPlane,
        },
        resources,
      );
    } else {
      // SotW entries always have bytes: they come from the snapshot (held(r)) or from an earlier send.
      sent = names.filter((n) => target.get(n)?.resource !== undefined);
      const anys = sent.flatMap((n) => {
        const r = target.get(n)?.resource;
        return r === undefined ? [] : [r.any];
      });
      bytes = encodeSotwResponse({ versionInfo: version, typeUrl: st.typeUrl, nonce, ...controlPlane }, anys);
    }
    st.pending = { nonce, target, version };
    st.held = st.apply(st.held, target);
    st.lastNonce = nonce;
    st.sentVersion = version;
    st.answered = true;
    this.#hooks.send(bytes, {
      streamId: this.id,
      kind: this.kind,
      nodeId: this.#node?.id ?? '',
      group: this.#group ?? '',
      typeUrl: st.typeUrl,
      type: typeShortName[st.typeUrl],
      nonce,
      version,
      resources: sent,
      removed,
      bytes: bytes.length,
    });
  }
}

function* resourcesOf(held: Iterable<Held>): Iterable<XdsResource> {
  for (const h of held) if (h.resource !== undefined) yield h.resource;
}
