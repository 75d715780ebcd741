import type { Ir, IrBackend, IrListener } from '../model/ir.js';
import { type IrError, validate } from '../model/validate.js';
import type { Diagnostic } from '../sources/objects.js';
import { GatewayCode } from './gatewayCodes.js';

/** Passes after which whatever validate() still reports is only reported. */
const MAX_PASSES = 3;

/**
 * Step 8: the IR must pass validate(). The translator checks its input, so anything validate() reports
 * is a bug in the translator; it is reported (SKEIN_GATEWAY_INTERNAL) and the smallest enclosing part is
 * dropped (a route, an L4 route, an endpoint, a virtual host, a listener) so that everything else keeps serving.
 */
export function dropInvalid(ir: Ir, memo?: ValidationMemo): { ir: Ir; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  let current = ir;
  for (let pass = 0; pass < MAX_PASSES; pass++) {
    // The first pass checks only what the memo has not seen pass before; after a drop, everything.
    const part = pass === 0 ? memo?.part(current) : undefined;
    const errors = part === undefined ? validate(current) : validate(part.ir).map(part.remap);
    if (errors.length === 0) {
      memo?.passed(current, part?.ir ?? current);
      break;
    }
    for (const e of errors) {
      const route = describe(current, e);
      diagnostics.push({
        code: GatewayCode.Internal,
        severity: 'error',
        ...(route === undefined ? {} : { object: route }),
        field: e.path,
        message: `translator produced invalid IR (${e.code}: ${e.message}); the offending part is dropped`,
      });
    }
    const next = drop(current, errors);
    if (next === current) break;
    current = next;
  }
  return { ir: current, diagnostics };
}

/**
 * The IR objects (listeners, virtual hosts) that passed validate() in an earlier build, so that a
 * build validates only the objects it made anew: the translator shares unchanged objects between
 * builds, and what validate() checks of a listener or virtual host depends on the object and on the
 * names of the backends and secrets alone (and, across listeners, on the listener names: sockets are
 * unique by name). So while those names are the same as when an object passed, it passes again.
 */
export class ValidationMemo {
  readonly #passed = new WeakSet<object>();
  /** The listener, backend and secret names of the IR that last passed. */
  #names = '';

  /**
   * The part of `ir` to validate: every backend and secret (cheap, and they give the names), each
   * listener not seen pass, with only its virtual hosts not seen pass; and how to map an error's path
   * in the part back to `ir`. Undefined when everything must be validated (the names changed).
   */
  part(ir: Ir): { ir: Ir; remap: (e: IrError) => IrError } | undefined {
    if (namesOf(ir) !== this.#names) return undefined;
    const listenerAt: number[] = [];
    const vhostAt: number[][] = [];
    const listeners: IrListener[] = [];
    ir.listeners.forEach((l, i) => {
      if (this.#passed.has(l)) return;
      const at: number[] = [];
      const virtualHosts = l.virtualHosts.filter((vh, j) => {
        if (this.#passed.has(vh)) return false;
        at.push(j);
        return true;
      });
      listenerAt.push(i);
      vhostAt.push(at);
      listeners.push(virtualHosts.length === l.virtualHosts.length ? l : { ...l, virtualHosts });
    });
    const remap = (e: IrError): IrError => {
      const path = e.path.replace(/^listeners\[(\d+)\](?:\.virtualHosts\[(\d+)\])?/, (_whole, i, j) => {
        const li = Number(i);
        const real = `listeners[${listenerAt[li] ?? li}]`;
        return j === undefined ? real : `${real}.virtualHosts[${vhostAt[li]?.[Number(j)] ?? j}]`;
      });
      return { ...e, path };
    };
    return { ir: { ...ir, listeners }, remap };
  }

  /** `ir` passed (having validated `checked`, all of it or the part): its objects pass from now on. */
  passed(ir: Ir, checked: Ir): void {
    this.#names = namesOf(ir);
    for (const l of checked.listeners) for (const vh of l.virtualHosts) this.#passed.add(vh);
    for (const l of ir.listeners) this.#passed.add(l);
  }
}

function namesOf(ir: Ir): string {
  const names = (items: readonly { name: string }[]) => items.map((x) => x.name).join('\n');
  return `${names(ir.listeners)}\0${names(ir.backends)}\0${names(ir.secrets)}`;
}

const ROUTE = /^listeners\[(\d+)\]\.virtualHosts\[(\d+)\]\.routes\[(\d+)\]/;
const VHOST = /^listeners\[(\d+)\]\.virtualHosts\[(\d+)\]/;
const L4ROUTE = /^listeners\[(\d+)\]\.l4Routes\[(\d+)\]/;
const LISTENER = /^listeners\[(\d+)\]/;
const ENDPOINT = /^backends\[(\d+)\]\.endpoints\[(\d+)\]/;

function drop(ir: Ir, errors: readonly IrError[]): Ir {
  const routes = new Set<string>();
  const vhosts = new Set<string>();
  const l4Routes = new Set<string>();
  const listeners = new Set<number>();
  const endpoints = new Set<string>();
  for (const e of errors) {
    const route = ROUTE.exec(e.path);
    const vhost = VHOST.exec(e.path);
    const l4Route = L4ROUTE.exec(e.path);
    const listener = LISTENER.exec(e.path);
    const endpoint = ENDPOINT.exec(e.path);
    if (route !== null) routes.add(`${route[1]}/${route[2]}/${route[3]}`);
    else if (vhost !== null) vhosts.add(`${vhost[1]}/${vhost[2]}`);
    else if (l4Route !== null) l4Routes.add(`${l4Route[1]}/${l4Route[2]}`);
    else if (listener !== null) listeners.add(Number(listener[1]));
    else if (endpoint !== null) endpoints.add(`${endpoint[1]}/${endpoint[2]}`);
  }
  if (routes.size + vhosts.size + l4Routes.size + listeners.size + endpoints.size === 0) return ir;
  const keptListeners: IrListener[] = [];
  ir.listeners.forEach((l, i) => {
    if (listeners.has(i)) return;
    keptListeners.push({
      ...l,
      virtualHosts: l.virtualHosts.flatMap((vh, j) =>
        vhosts.has(`${i}/${j}`)
          ? []
          : [{ ...vh, routes: vh.routes.filter((_, k) => !routes.has(`${i}/${j}/${k}`)) }],
      ),
      ...(l.l4Routes === undefined
        ? {}
        : { l4Routes: l.l4Routes.filter((_, j) => !l4Routes.has(`${i}/${j}`)) }),
    });
  });
  const keptBackends: IrBackend[] = ir.backends.map((b, i) => ({
    ...b,
    endpoints: b.endpoints.filter((_, j) => !endpoints.has(`${i}/${j}`)),
  }));
  return { ...ir, listeners: keptListeners, backends: keptBackends };
}

/** The source object of an IR error's part, when the path leads to a route (whose name says where). */
function describe(ir: Ir, e: IrError): string | undefined {
  const m = ROUTE.exec(e.path);
  if (m !== null) return ir.listeners[Number(m[1])]?.virtualHosts[Number(m[2])]?.routes[Number(m[3])]?.name;
  const l4 = L4ROUTE.exec(e.path);
  if (l4 !== null) return ir.listeners[Number(l4[1])]?.l4Routes?.[Number(l4[2])]?.name;
  return undefined;
}
