/**
 * Consumes the `skein_flows` ring buffer (every family writes to it: the policy programs' verdicts, the
 * socket load balancer's refusals) into logs and Prometheus metrics. Allowed flows are logged at debug;
 * drops at warn, with their reason, at most `dropLinesPerSecond` lines per reason per second (the rest
 * are counted and summed up in one line), so a flood of drops cannot flood the log. Metrics count every
 * event. The poll waits off the event loop (the addon polls on a worker thread).
 */

import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { RingBuffer } from './bpfObject.js';
import type { FlowEvent, Hook } from './codecs/flow.js';

export interface FlowLogOptions {
  readonly logger: Logger;
  readonly registry: Registry;
  /** How long one poll waits for events (bounds how long stop() takes). Default 200 ms. */
  readonly pollMs?: number;
  /** Drop log lines per reason per second before the rest are summed up. Default 5. */
  readonly dropLinesPerSecond?: number;
  /** The clock, in ms; tests of the rate limit pass their own. */
  readonly now?: () => number;
}

/** The direction of the pod whose program decided: what it sends (egress) or receives (ingress). */
function directionOf(hook: Hook): 'ingress' | 'egress' | 'none' {
  switch (hook) {
    case 'policyIngress':
    case 'recvmsg4':
    case 'recvmsg6':
      return 'ingress';
    case 'policyEgress':
    case 'connect4':
    case 'connect6':
    case 'sendmsg4':
    case 'sendmsg6':
      return 'egress';
    default:
      return 'none';
  }
}

function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

const PROTOCOLS: Readonly<Record<number, string>> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  58: 'icmpv6',
  132: 'sctp',
};

/** One line for a flow event: `drop 10.0.0.1:40000 -> 10.0.0.2:80/tcp (policyDenied, identities 300 -> 400)`. */
export function describeFlow(e: FlowEvent): string {
  const proto = PROTOCOLS[e.protocol] ?? String(e.protocol);
  const to =
    e.originalDestination !== e.destination || e.originalDestinationPort !== e.destinationPort
      ? `${endpoint(e.originalDestination, e.originalDestinationPort)} (as ${endpoint(e.destination, e.destinationPort)})`
      : endpoint(e.destination, e.destinationPort);
  return `${e.verdict} ${endpoint(e.source, e.sourcePort)} -> ${to}/${proto} (${e.reason}, ${e.hook}, identities ${e.sourceIdentity} -> ${e.destinationIdentity})`;
}

export class FlowLog {
  readonly #rb: RingBuffer<FlowEvent>;
  readonly #o: FlowLogOptions;
  readonly #flows: Counter<'verdict' | 'reason'>;
  readonly #drops: Counter<'reason' | 'direction'>;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #events = 0;
  #dropCount = 0;
  /** Per reason: the second being counted, lines logged in it, lines held back. */
  readonly #window = new Map<string, { second: number; logged: number; held: number }>();

  constructor(rb: RingBuffer<FlowEvent>, options: FlowLogOptions) {
    this.#rb = rb;
    this.#o = options;
    this.#flows = new Counter({
      name: 'skein_datapath_flows_total',
      help: 'Flow events of the eBPF datapath, by verdict and reason',
      labelNames: ['verdict', 'reason'],
      registers: [options.registry],
    });
    this.#drops = new Counter({
      name: 'skein_datapath_drops_total',
      help: 'Packets and connections the eBPF datapath dropped, by reason and direction',
      labelNames: ['reason', 'direction'],
      registers: [options.registry],
    });
  }

  /** Events seen, drops among them. */
  get stats(): { readonly events: number; readonly drops: number } {
    return { events: this.#events, drops: this.#dropCount };
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#loop;
    this.#flushHeld();
    this.#rb.close();
  }

  /** Handles events (the poll loop calls it; exposed for the rate-limit test). */
  handle(events: readonly FlowEvent[]): void {
    const { logger } = this.#o;
    for (const e of events) {
      this.#events++;
      this.#flows.inc({ verdict: e.verdict, reason: e.reason });
      if (e.verdict !== 'drop') {
        if (logger.isLevelEnabled('debug')) logger.debug(`flow: ${describeFlow(e)}`);
        continue;
      }
      this.#dropCount++;
      this.#drops.inc({ reason: e.reason, direction: directionOf(e.hook) });
      this.#logDrop(e);
    }
  }

  async #run(): Promise<void> {
    const pollMs = this.#o.pollMs ?? 200;
    while (!this.#stopped) {
      try {
        this.handle(await this.#rb.poll(pollMs));
      } catch (e) {
        // A ring buffer that cannot be read will not recover; say so once and stop reading.
        this.#o.logger.error(
          { err: e instanceof Error ? e.message : String(e) },
          `flow events are no longer read: ${e instanceof Error ? e.message : String(e)}`,
        );
        return;
      }
    }
  }

  #logDrop(e: FlowEvent): void {
    const second = Math.floor((this.#o.now ?? Date.now)() / 1000);
    const limit = this.#o.dropLinesPerSecond ?? 5;
    let w = this.#window.get(e.reason);
    if (w === undefined || w.second !== second) {
      if (w !== undefined && w.held > 0) this.#summarise(e.reason, w.held);
      w = { second, logged: 0, held: 0 };
      this.#window.set(e.reason, w);
    }
    if (w.logged < limit) {
      w.logged++;
      this.#o.logger.warn(`dropped: ${describeFlow(e)}`);
    } else {
      w.held++;
    }
  }

  #summarise(reason: string, held: number): void {
    this.#o.logger.warn(`dropped ${held} more (${reason}) in one second; not logged one by one`);
  }

  #flushHeld(): void {
    for (const [reason, w] of this.#window) if (w.held > 0) this.#summarise(reason, w.held);
    this.#window.clear();
  }
}
