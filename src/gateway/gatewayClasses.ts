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

/**
 * Step 1: the GatewayClasses Skein owns. A class is accepted unless it has a parametersRef: Skein takes
 * no parameters, and the spec asks to reject a class whose parameters cannot be honoured
 * (InvalidParameters) rather than ignore them.
 */
export function processGatewayClasses(
  gatewayClasses: readonly GatewayClass[],
  controllerName: string,
  transitionTime: string,
): GatewayClassesResult {
  const classes = new Map<string, ClassState>();
  const statuses: ObjectStatus[] = [];
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
    classes.set(name, { name, accepted: accepted.status === 'True', message: accepted.message });
    statuses.push({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      namespace: '',
      name,
      status: { conditions: [accepted] },
    });
  }
  return { classes, statuses };
}
