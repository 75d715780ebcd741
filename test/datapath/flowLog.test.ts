import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { RingBuffer } from '../../src/datapath/bpfObject.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { describeFlow, FlowLog } from '../../src/datapath/flowLog.js';

// The pure part of the flow log: which events become which lines and metrics, and the rate limit on
// drop lines. The ring buffer itself is read on the real kernel in test/kube/agentDatapath.test.ts
// (a real drop, in the agent's log and on its /metrics).

function event(over: Partial<FlowEvent> = {}): FlowEvent {
  return {
    timestampNs: 1n,
    cookie: 0n,
    source: '10.0.0.1',
    destination: '10.0.0.2',
    originalDestination: '10.0.0.2',
    sourcePort: 40000,
    destinationPort: 7000,
    originalDestinationPort: 7000,
    protocol: 6,
    verdict: 'drop',
    reason: 'policyDenied',
    hook: 'policyIngress',
    ifindex: 3,
    sourceIdentity: 300,
    destinationIdentity: 400,
    ...over,
  };
}

function setup(now: { t: number }) {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: 'debug', base: null },
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l));
        cb();
      },
    }),
  );
  const registry = new Registry();
  // Never polled: these tests hand events to handle() directly.
  const rb = { poll: async () => [], close: () => {} } as unknown as RingBuffer<FlowEvent>;
  const log = new FlowLog(rb, { logger, registry, dropLinesPerSecond: 3, now: () => now.t });
  return { log, lines, registry };
}

describe('the flow log', () => {
  it('describes a flow in one line, with the service it was addressed to when translated', () => {
    expect(describeFlow(event())).toBe(
      'drop 10.0.0.1:40000 -> 10.0.0.2:7000/tcp (policyDenied, policyIngress, identities 300 -> 400)',
    );
    expect(
      describeFlow(
        event({
          verdict: 'translated',
          reason: 'lbBackend',
          hook: 'connect4',
          originalDestination: '10.96.0.10',
          originalDestinationPort: 80,
          protocol: 17,
        }),
      ),
    ).toBe(
      'translated 10.0.0.1:40000 -> 10.96.0.10:80 (as 10.0.0.2:7000)/udp (lbBackend, connect4, identities 300 -> 400)',
    );
    expect(
      describeFlow(event({ source: 'fd00::1', destination: 'fd00::2', originalDestination: 'fd00::2' })),
    ).toMatch(/^drop \[fd00::1\]:40000 -> \[fd00::2\]:7000\/tcp/);
  });

  it('logs passes at debug and drops at warn, at most N drop lines per reason per second, the rest summed up', async () => {
    const now = { t: 10_000 };
    const { log, lines, registry } = setup(now);
    log.handle([event({ verdict: 'pass', reason: 'policyAllowed' })]);
    log.handle(Array.from({ length: 10 }, () => event()));
    log.handle([event({ reason: 'lbNoBackends', hook: 'connect4' })]);
    expect(lines.map((l) => [l.level, l.msg.split(' ')[0]])).toEqual([
      [20, 'flow:'],
      [40, 'dropped:'],
      [40, 'dropped:'],
      [40, 'dropped:'],
      [40, 'dropped:'],
    ]);
    expect(lines[4]?.msg).toMatch(/\(lbNoBackends, connect4,/);
    // The next second: the held-back lines of the last one are summed up, then it logs again.
    now.t += 1000;
    log.handle([event()]);
    expect(lines.slice(5).map((l) => l.msg)).toEqual([
      'dropped 7 more (policyDenied) in one second; not logged one by one',
      'dropped: drop 10.0.0.1:40000 -> 10.0.0.2:7000/tcp (policyDenied, policyIngress, identities 300 -> 400)',
    ]);
    expect(log.stats).toEqual({ events: 13, drops: 12 });
    const text = await registry.metrics();
    expect(text).toContain('skein_datapath_drops_total{reason="policyDenied",direction="ingress"} 11');
    expect(text).toContain('skein_datapath_drops_total{reason="lbNoBackends",direction="egress"} 1');
    expect(text).toContain('skein_datapath_flows_total{verdict="pass",reason="policyAllowed"} 1');
    expect(text).toContain('skein_datapath_flows_total{verdict="drop",reason="policyDenied"} 11');
  });

  it('says on stop how many drop lines it held back', async () => {
    const now = { t: 5_000 };
    const { log, lines } = setup(now);
    log.handle(Array.from({ length: 5 }, () => event({ reason: 'proxyUnavailable' })));
    await log.stop();
    expect(lines.at(-1)?.msg).toBe('dropped 2 more (proxyUnavailable) in one second; not logged one by one');
  });
});
