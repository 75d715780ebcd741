import type { ObjectStatus } from '../sources/objects.js';
import {
  type Condition,
  type ConditionContext,
  ConditionType,
  condition,
  GatewayReason,
  ListenerReason,
  sortConditions,
} from './conditions.js';
import {
  type GatewayState,
  gatewayAccepted,
  gatewayProgrammed,
  type ListenerState,
  listenerProgrammed,
  listenerValid,
} from './listeners.js';

/**
 * Step 6: the status of every Gateway of ours, written after the routes because listeners report how
 * many routes attached to them. Gateways come out sorted by namespace/name.
 */
export function gatewayStatuses(gateways: Iterable<GatewayState>, transitionTime: string): ObjectStatus[] {
  return gatewayStatusEntries(gateways, transitionTime).map((e) => e.status);
}

/**
 * gatewayStatuses with the Gateway of each status; `reuse(g)` may hand back a status to use as it is
 * (the one returned for the same Gateway state and attachedRoutes counts last build).
 */
export function gatewayStatusEntries(
  gateways: Iterable<GatewayState>,
  transitionTime: string,
  reuse?: (g: GatewayState) => ObjectStatus | undefined,
): { readonly gateway: GatewayState; readonly status: ObjectStatus }[] {
  const out: { gateway: GatewayState; status: ObjectStatus }[] = [];
  for (const g of gateways) {
    const again = reuse?.(g);
    if (again !== undefined) {
      out.push({ gateway: g, status: again });
      continue;
    }
    const ctx = { generation: g.generation, transitionTime };
    const listeners = g.listeners.map((l) => listenerStatus(l, ctx));
    const programmed = gatewayProgrammed(g);
    out.push({
      gateway: g,
      status: {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'Gateway',
        namespace: g.namespace,
        name: g.name,
        status: {
          ...(programmed && g.addresses.ok && g.addresses.reported.length > 0
            ? { addresses: g.addresses.reported.map((value) => ({ type: 'IPAddress', value })) }
            : {}),
          conditions: sortConditions([acceptedCondition(g, ctx), programmedCondition(g, ctx)]),
          listeners,
        },
      },
    });
  }
  return out.sort((a, b) =>
    a.gateway.namespace === b.gateway.namespace
      ? cmp(a.gateway.name, b.gateway.name)
      : cmp(a.gateway.namespace, b.gateway.namespace),
  );
}

function acceptedCondition(g: GatewayState, ctx: ConditionContext): Condition {
  if (g.rejected !== undefined)
    return condition(ctx, ConditionType.Accepted, false, g.rejected.reason, g.rejected.message);
  const invalid = g.listeners.filter((l) => !listenerValid(l));
  if (invalid.length === 0) {
    return condition(ctx, ConditionType.Accepted, true, GatewayReason.Accepted, 'the Gateway is valid');
  }
  const which = invalid.map((l) => `${l.name} (${listenerProblem(l)})`).join(', ');
  return gatewayAccepted(g)
    ? condition(
        ctx,
        ConditionType.Accepted,
        true,
        GatewayReason.ListenersNotValid,
        `some listeners are not valid and are not served: ${which}`,
      )
    : condition(
        ctx,
        ConditionType.Accepted,
        false,
        GatewayReason.ListenersNotValid,
        `no listener is valid: ${which}`,
      );
}

function programmedCondition(g: GatewayState, ctx: ConditionContext): Condition {
  if (!gatewayAccepted(g)) {
    return condition(
      ctx,
      ConditionType.Programmed,
      false,
      GatewayReason.Invalid,
      'the Gateway is not accepted',
    );
  }
  if (!g.addresses.ok) {
    return condition(
      ctx,
      ConditionType.Programmed,
      false,
      GatewayReason.AddressNotUsable,
      g.addresses.message,
    );
  }
  const where =
    g.addresses.reported.length > 0
      ? g.addresses.addresses.join(', ')
      : `every interface (${g.addresses.addresses.join(', ')}); no address is reported, as spec.addresses names no IP address`;
  return condition(
    ctx,
    ConditionType.Programmed,
    true,
    GatewayReason.Programmed,
    `listeners bound on ${where}`,
  );
}

function listenerStatus(l: ListenerState, ctx: ConditionContext): Record<string, unknown> {
  const conditions: Condition[] = [];
  if (l.conflict !== undefined && l.accepted.ok) {
    // Not in the spec's list of Accepted reasons (which lets controllers add their own): a listener
    // that loses a conflict is not accepted, and this names why in the same words as Conflicted.
    conditions.push(
      condition(
        ctx,
        ConditionType.Accepted,
        false,
        l.conflictReason ?? ListenerReason.HostnameConflict,
        l.conflict,
      ),
    );
  } else {
    conditions.push(
      condition(ctx, ConditionType.Accepted, l.accepted.ok, l.accepted.reason, l.accepted.message),
    );
  }
  conditions.push(
    l.conflict === undefined
      ? condition(ctx, ConditionType.Conflicted, false, ListenerReason.NoConflicts, 'no conflicts')
      : condition(
          ctx,
          ConditionType.Conflicted,
          true,
          l.conflictReason ?? ListenerReason.HostnameConflict,
          l.conflict,
        ),
  );
  conditions.push(condition(ctx, ConditionType.ResolvedRefs, l.refs.ok, l.refs.reason, l.refs.message));
  conditions.push(
    listenerProgrammed(l)
      ? condition(
          ctx,
          ConditionType.Programmed,
          true,
          ListenerReason.Programmed,
          'the listener is programmed',
        )
      : condition(
          ctx,
          ConditionType.Programmed,
          false,
          ListenerReason.Invalid,
          `not programmed: ${listenerProblem(l)}`,
        ),
  );
  return {
    name: l.name,
    supportedKinds: l.supportedKinds.map((k) => ({ group: k.group, kind: k.kind })),
    attachedRoutes: l.attachedRoutes,
    conditions: sortConditions(conditions),
  };
}

/** The first reason a listener does not serve traffic, in words. */
function listenerProblem(l: ListenerState): string {
  const g = l.gateway;
  if (!l.accepted.ok) return l.accepted.message;
  if (l.conflict !== undefined) return l.conflict;
  if (l.supportedKinds.length === 0) return 'it allows no route kind Skein supports';
  if (l.tls?.mode === 'Terminate' && l.tls.secrets.length === 0)
    return `no certificate resolved (${l.refs.message})`;
  if (g.rejected !== undefined) return `the Gateway is not accepted (${g.rejected.reason})`;
  if (!g.addresses.ok) return g.addresses.message;
  if (!gatewayAccepted(g)) return 'the Gateway is not accepted';
  return 'unknown';
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
