// The policy programs (bpf/policy.bpf.c) run in the kernel on crafted packets with BPF_PROG_TEST_RUN:
// parsing, verdicts, port ranges, precedence, CIDRs with excepts, connection tracking, counters and flow
// events. The maps are written from a hand-made policy IR through planPolicy, as reconcile() would, but
// without attaching anything: a test run's packet arrives on loopback (ifindex 1), which is the endpoint.

import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RingBuffer } from '../../src/datapath/bpfObject.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { PolicyDatapath } from '../../src/datapath/policy.js';
import { planPolicy } from '../../src/datapath/policyPlan.js';
import type { PolicyEndpoint, PolicyIr, PolicyRule } from '../../src/model/policy.js';
import { validatePolicy } from '../../src/model/validatePolicy.js';
import { describeKernel, kernelSuite, type Made, mountBpffs, removeAll } from './helpers.js';
import {
  ACK,
  FIN,
  ICMPV6,
  icmp,
  ipv4,
  ipv6,
  ports,
  SCTP,
  SYN,
  skbContext,
  TCP,
  tcp,
  UDP,
} from './packets.js';

const TC_ACT_UNSPEC = -1;
const TC_ACT_SHOT = 2;

const POD = '10.1.0.10'; // the endpoint under test (ifindex 1 in a test run)
const WEB = '10.1.0.20'; // identity 300, a local endpoint on a made-up ifindex
const DB = '10.1.0.30'; // identity 301, remote
const OUTSIDE = '192.0.2.7'; // no ipcache entry: world
const EP_IFINDEX = 1;
const WEB_IFINDEX = 4000;

const identities: PolicyIr['identities'] = [
  { id: 1, kind: 'reserved', name: 'host' },
  { id: 2, kind: 'reserved', name: 'world' },
  { id: 299, kind: 'labels', namespace: 'x', podLabels: { app: 'pod' }, namespaceLabels: {} },
  { id: 300, kind: 'labels', namespace: 'x', podLabels: { app: 'web' }, namespaceLabels: {} },
  { id: 301, kind: 'labels', namespace: 'x', podLabels: { app: 'db' }, namespaceLabels: {} },
  { id: 0x0100_0001, kind: 'cidr', cidr: '192.0.2.0/24' },
  { id: 0x0100_0002, kind: 'cidr', cidr: '192.0.2.128/25' },
  { id: 0x0100_0003, kind: 'cidr', cidr: '2001:db8::/32' },
];
const ipcache: PolicyIr['ipcache'] = [
  { prefix: `${POD}/32`, identity: 299 },
  { prefix: `${WEB}/32`, identity: 300 },
  { prefix: `${DB}/32`, identity: 301 },
];

const open = { enforced: false, rules: [] } as const;
const rules = (...r: PolicyRule[]) => ({ enforced: true, rules: r });
const allow = (peers: PolicyRule['peers'], ports: PolicyRule['ports'] = []): PolicyRule => ({
  peers,
  ports,
  verdict: 'allow',
  origin: 'test',
});

function irWith(pod: Partial<PolicyEndpoint>, web: Partial<PolicyEndpoint> = {}): PolicyIr {
  return {
    identities,
    ipcache,
    endpoints: [
      {
        name: 'x/pod',
        addresses: [POD],
        interface: 'pod0',
        identity: 299,
        ingress: open,
        egress: open,
        ...pod,
      },
      {
        name: 'x/web',
        addresses: [WEB],
        interface: 'web0',
        identity: 300,
        ingress: open,
        egress: open,
        ...web,
      },
    ],
  };
}

describeKernel(kernelSuite('policy programs (tc, BPF_PROG_TEST_RUN)'), () => {
  let bpffs: Made | undefined;
  let dp: PolicyDatapath;
  let flows: RingBuffer<FlowEvent>;

  beforeAll(async () => {
    bpffs = await mountBpffs();
    dp = PolicyDatapath.load({ pinRoot: bpffs.path, flowEvents: 'packets' });
    flows = dp.flows();
  });
  afterAll(async () => {
    flows?.close();
    dp?.close();
    await removeAll([bpffs]);
  });

  /** Replaces the maps' contents with the plan of `ir` (no attach: the test runs arrive on ifindex 1). */
  function load(ir: PolicyIr): void {
    expect(validatePolicy(ir)).toEqual([]);
    const plan = planPolicy(
      ir,
      new Map([
        ['pod0', EP_IFINDEX],
        ['web0', WEB_IFINDEX],
      ]),
    );
    for (const m of [dp.endpoints, dp.ipcache, dp.cidrs, dp.policy, dp.ct] as const) {
      for (const k of [...(m as { keys(): Iterable<unknown> }).keys()])
        (m as { delete(k: unknown): boolean }).delete(k);
    }
    dp.ipcache.setMany(plan.ipcache);
    for (const [k, v] of plan.cidrs) dp.cidrs.set(k, v);
    for (const [k, v] of plan.policy) dp.policy.set(k, v);
    for (const [k, v] of plan.endpoints) dp.endpoints.set(k, v);
  }

  /** Runs the packet through one program; returns its verdict and the one event it emitted. */
  function run(
    which: 'from' | 'to',
    packet: Buffer,
    ctx?: Buffer,
  ): { retval: number; event: FlowEvent | undefined } {
    expect(flows.consume()).toEqual([]);
    const prog = which === 'from' ? dp.fromEndpoint : dp.toEndpoint;
    const r = prog.testRun(packet, ctx === undefined ? {} : { ctx });
    const events = flows.consume();
    expect(events.length).toBeLessThanOrEqual(1);
    return { retval: r.retval, event: events[0] };
  }

  const ctKey = (dst: string, dport: number) =>
    ({
      source: POD,
      destination: dst,
      sourcePort: 40000,
      destinationPort: dport,
      ifindex: EP_IFINDEX,
      protocol: TCP,
    }) as const;
  const out = (dst: string, dport: number, flags = SYN, sport = 40000) =>
    ipv4(TCP, POD, dst, tcp(sport, dport, flags));
  const into = (src: string, dport: number, flags = SYN, sport = 40000) =>
    ipv4(TCP, src, POD, tcp(sport, dport, flags));

  beforeEach(() => {
    flows.consume();
  });

  it('lets a pod no policy selects talk, tracks the flow, and reports it', () => {
    load(irWith({}));
    const { retval, event } = run('from', out(DB, 5432));
    expect(retval).toBe(TC_ACT_UNSPEC);
    expect(event).toMatchObject({
      hook: 'policyEgress',
      verdict: 'pass',
      reason: 'policyNotEnforced',
      source: POD,
      destination: DB,
      destinationPort: 5432,
      protocol: TCP,
      ifindex: EP_IFINDEX,
      sourceIdentity: 299,
      destinationIdentity: 301,
    });
    expect(
      dp.ct.get({
        source: POD,
        destination: DB,
        sourcePort: 40000,
        destinationPort: 5432,
        ifindex: EP_IFINDEX,
        protocol: TCP,
        direction: 'egress',
      }),
    ).toMatchObject({ verdict: 'allow', remoteIdentity: 301, flags: 0 });
  });

  it('denies by default once a policy selects the pod, and counts the drop by reason', () => {
    load(irWith({ egress: rules() }));
    const before = dp.counters().get('policyDenied')?.packets ?? 0n;
    const { retval, event } = run('from', out(DB, 5432));
    expect(retval).toBe(TC_ACT_SHOT);
    expect(event).toMatchObject({ verdict: 'drop', reason: 'policyDenied', destinationIdentity: 301 });
    expect(dp.counters().get('policyDenied')?.packets).toBe(before + 1n);
    expect(dp.counters().get('policyDenied')?.bytes).toBeGreaterThan(0n);
  });

  it('allows by identity and port, and nothing else', () => {
    load(irWith({ egress: rules(allow([301], [{ protocol: 'TCP', port: 5432 }])) }));
    expect(run('from', out(DB, 5432)).event).toMatchObject({ verdict: 'pass', reason: 'policyAllowed' });
    expect(run('from', out(DB, 5433)).retval).toBe(TC_ACT_SHOT);
    expect(run('from', out(WEB, 5432)).retval).toBe(TC_ACT_SHOT);
    expect(run('from', ipv4(UDP, POD, DB, ports(40000, 5432))).retval).toBe(TC_ACT_SHOT);
  });

  it('allows a port range (endPort) exactly', () => {
    load(irWith({ egress: rules(allow('any', [{ protocol: 'UDP', port: 1000, endPort: 1999 }])) }));
    const verdict = (port: number) => run('from', ipv4(UDP, POD, OUTSIDE, ports(5555, port))).retval;
    for (const port of [1000, 1001, 1023, 1024, 1500, 1536, 1983, 1999])
      expect(verdict(port), `${port}`).toBe(TC_ACT_UNSPEC);
    for (const port of [999, 2000, 2047, 80]) expect(verdict(port), `${port}`).toBe(TC_ACT_SHOT);
  });

  it('lets replies and later packets of an allowed flow through, and drops new flows the other way', () => {
    load(irWith({ ingress: rules(), egress: rules(allow([301], [{ protocol: 'TCP', port: 5432 }])) }));
    expect(run('from', out(DB, 5432, SYN)).retval).toBe(TC_ACT_UNSPEC);
    // The reply arrives on the pod's ingress, which allows nothing new: it passes as a reply.
    const reply = run('to', ipv4(TCP, DB, POD, tcp(5432, 40000, SYN | ACK)));
    expect(reply).toMatchObject({ retval: TC_ACT_UNSPEC, event: { reason: 'ctReply', verdict: 'pass' } });
    const later = run('from', out(DB, 5432, ACK));
    expect(later).toMatchObject({ retval: TC_ACT_UNSPEC, event: { reason: 'ctEstablished' } });
    // The same server starting a connection to the pod is a new flow into it: denied.
    expect(run('to', ipv4(TCP, DB, POD, tcp(5432, 40001, SYN))).event).toMatchObject({
      hook: 'policyIngress',
      verdict: 'drop',
      reason: 'policyDenied',
      sourceIdentity: 301,
      destinationIdentity: 299,
    });
    // A FIN makes the entry short-lived (closing).
    run('from', out(DB, 5432, FIN | ACK));
    const key = {
      source: POD,
      destination: DB,
      sourcePort: 40000,
      destinationPort: 5432,
      ifindex: EP_IFINDEX,
      protocol: TCP,
      direction: 'egress',
    } as const;
    expect(dp.ct.get(key)?.flags).toBe(1 | 2);
  });

  it('decides a new SYN again on a tuple it already tracks, and forgets an expired flow', () => {
    load(irWith({ egress: rules(allow([301], [{ protocol: 'TCP', port: 5432 }])) }));
    expect(run('from', out(DB, 5432, SYN)).retval).toBe(TC_ACT_UNSPEC);
    load(irWith({ egress: rules() })); // the rule is gone (and the maps' CT with it: put it back)
    const key = {
      source: POD,
      destination: DB,
      sourcePort: 40000,
      destinationPort: 5432,
      ifindex: EP_IFINDEX,
      protocol: TCP,
      direction: 'egress',
    } as const;
    dp.ct.set(key, {
      lastSeenNs: process.hrtime.bigint(),
      remoteIdentity: 301,
      verdict: 'allow',
      flags: 0,
      proxyPort: 0,
    });
    expect(run('from', out(DB, 5432, ACK)).event?.reason).toBe('ctEstablished');
    expect(run('from', out(DB, 5432, SYN)).event?.reason).toBe('policyDenied');
    // A closing flow (FIN seen) last seen 11 s ago is past its 10 s: gone.
    const past = process.hrtime.bigint() - 11_000_000_000n;
    dp.ct.set(key, { lastSeenNs: past, remoteIdentity: 301, verdict: 'allow', flags: 2, proxyPort: 0 });
    expect(run('from', out(DB, 5432, ACK)).event?.reason).toBe('policyDenied');
  });

  it('lets a deny rule win over an allow, whichever is more specific', () => {
    const deny = (peers: PolicyRule['peers'], p: PolicyRule['ports']): PolicyRule => ({
      peers,
      ports: p,
      verdict: 'deny',
      origin: 'test',
    });
    load(
      irWith({
        egress: rules(
          allow('any'),
          deny([301], [{ protocol: 'TCP', port: 22 }]),
          allow([301], [{ protocol: 'TCP', port: 22 }]),
        ),
      }),
    );
    expect(run('from', out(DB, 22)).event).toMatchObject({ verdict: 'drop', reason: 'policyDenyRule' });
    expect(run('from', out(WEB, 22)).retval).toBe(TC_ACT_UNSPEC);
    expect(run('from', out(DB, 23)).retval).toBe(TC_ACT_UNSPEC);
    load(irWith({ egress: rules(deny('any', []), allow([301], [{ protocol: 'TCP', port: 22 }])) }));
    expect(run('from', out(DB, 22)).event?.reason).toBe('policyDenyRule');
  });

  it('matches ipBlocks with excepts, and pod addresses inside them, by CIDR identity', () => {
    // 192.0.2.0/24 except 192.0.2.128/25: the except has its own identity, which the rule leaves out.
    const ir = irWith({ egress: rules(allow([0x0100_0001], [{ protocol: 'TCP', port: 443 }])) });
    load({ ...ir, ipcache: [...ipcache, { prefix: '192.0.2.9/32', identity: 301 }] });
    expect(run('from', out('192.0.2.1', 443)).event).toMatchObject({
      reason: 'policyAllowed',
      destinationIdentity: 2,
    });
    expect(run('from', out('192.0.2.127', 443)).retval).toBe(TC_ACT_UNSPEC);
    expect(run('from', out('192.0.2.9', 443)).event).toMatchObject({
      reason: 'policyAllowed',
      destinationIdentity: 301,
    });
    expect(run('from', out('192.0.2.128', 443)).event?.reason).toBe('policyDenied');
    expect(run('from', out('192.0.2.255', 443)).retval).toBe(TC_ACT_SHOT);
    expect(run('from', out('198.51.100.1', 443)).retval).toBe(TC_ACT_SHOT);
  });

  it('keeps IPv4 out of an IPv6 block that would cover the mapped range', () => {
    const wide: PolicyIr['identities'] = [
      ...identities.slice(0, 5),
      { id: 0x0100_0009, kind: 'cidr', cidr: '::/0' },
    ];
    load({ ...irWith({ egress: rules(allow([0x0100_0009])) }), identities: wide });
    expect(run('from', ipv6(TCP, '2001:db8::1', '2001:db8::2', tcp(1, 80, SYN))).retval).toBe(TC_ACT_UNSPEC);
    expect(run('from', out(OUTSIDE, 80)).retval).toBe(TC_ACT_SHOT);
  });

  it('parses UDP, SCTP and IPv6, and passes neighbour discovery without policy', () => {
    load(
      irWith({
        egress: rules(
          allow('any', [
            { protocol: 'SCTP', port: 38412 },
            { protocol: 'UDP', port: 53 },
          ]),
        ),
      }),
    );
    expect(run('from', ipv4(SCTP, POD, OUTSIDE, ports(38412, 38412, 12))).event).toMatchObject({
      protocol: SCTP,
      destinationPort: 38412,
      reason: 'policyAllowed',
    });
    expect(run('from', ipv4(UDP, POD, OUTSIDE, ports(5353, 53))).retval).toBe(TC_ACT_UNSPEC);
    expect(run('from', ipv4(TCP, POD, OUTSIDE, tcp(5353, 53, SYN))).retval).toBe(TC_ACT_SHOT);
    expect(run('from', ipv6(UDP, 'fd00::10', '2001:db8::1', ports(5353, 53))).event).toMatchObject({
      source: 'fd00::10',
      reason: 'policyAllowed',
    });
    expect(run('from', ipv6(ICMPV6, 'fe80::1', 'ff02::1:ff00:1', icmp(135)))).toEqual({
      retval: TC_ACT_UNSPEC,
      event: undefined,
    });
    expect(run('from', ipv6(ICMPV6, 'fd00::10', '2001:db8::1', icmp(128))).retval).toBe(TC_ACT_SHOT);
  });

  it('applies only rules for every port to packets without ports, and drops broken headers where enforced', () => {
    load(irWith({ egress: rules(allow([301], [{ protocol: 'UDP', port: 53 }]), allow([300])) }));
    const frag = (dst: string) => ipv4(UDP, POD, dst, Buffer.alloc(8), { fragOffset: 100 });
    expect(run('from', frag(WEB)).event).toMatchObject({ reason: 'policyAllowed' });
    expect(run('from', frag(DB)).event).toMatchObject({ verdict: 'drop', reason: 'policyDenied' });
    expect(run('from', ipv4(TCP, POD, WEB, Buffer.alloc(2))).event).toMatchObject({
      verdict: 'drop',
      reason: 'parseTruncated',
    });
    load(irWith({}));
    expect(run('from', ipv4(TCP, POD, WEB, Buffer.alloc(2)))).toEqual({
      retval: TC_ACT_UNSPEC,
      event: undefined,
    });
  });

  it("decides a local receiver's ingress at the sender, and tracks the flow for the receiver", () => {
    load(irWith({}, { ingress: rules(allow([299], [{ protocol: 'TCP', port: 8080 }])) }));
    expect(run('from', out(WEB, 8080)).retval).toBe(TC_ACT_UNSPEC);
    const receiver = {
      source: POD,
      destination: WEB,
      sourcePort: 40000,
      destinationPort: 8080,
      ifindex: WEB_IFINDEX,
      protocol: TCP,
      direction: 'ingress',
    } as const;
    expect(dp.ct.get(receiver)).toMatchObject({ verdict: 'allow', remoteIdentity: 299 });
    expect(run('from', out(WEB, 8081)).event).toMatchObject({
      hook: 'policyIngress',
      verdict: 'drop',
      reason: 'policyDenied',
      destinationIdentity: 300,
    });
  });

  it("passes the proxy's own upstream connections (marked) into an isolated pod", () => {
    load(irWith({ ingress: rules() }));
    expect(run('to', into('10.9.9.9', 80), skbContext({ mark: 0xb000 })).event).toMatchObject({
      verdict: 'pass',
      reason: 'fromProxy',
    });
    expect(run('to', into('10.9.9.9', 80, SYN, 40001), skbContext({ mark: 0xa000 })).event?.reason).toBe(
      'policyDenied',
    );
  });

  describe('redirect', () => {
    const redirect = (proxyPort: number): PolicyRule => ({
      peers: 'any',
      ports: [{ protocol: 'TCP', port: 8080 }],
      verdict: 'redirect',
      proxyPort,
      origin: 'test: L7 on 8080',
    });

    it('drops what it cannot hand to a proxy that is not listening', () => {
      load(irWith({ egress: rules(allow('any'), redirect(1)) }));
      expect(run('from', out(DB, 8080)).event).toMatchObject({ verdict: 'drop', reason: 'proxyUnavailable' });
      expect(run('from', out(DB, 8081)).event).toMatchObject({ verdict: 'pass', reason: 'policyAllowed' });
    });

    it('finds the listener on loopback at the proxy port (a test run is no tc ingress, so it cannot assign it)', async () => {
      // The hand-over itself needs a packet on a real ingress path: redirect.e2e.test.ts sends one to Envoy.
      const server = net.createServer();
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const proxyPort = (server.address() as net.AddressInfo).port;
        load(irWith({ egress: rules(allow('any'), redirect(proxyPort)) }));
        const r = run('from', out(DB, 8080));
        expect(r).toMatchObject({
          retval: TC_ACT_SHOT,
          event: { verdict: 'drop', reason: 'proxyAssignFailed' },
        });
        expect(dp.ct.get({ ...ctKey(DB, 8080), direction: 'egress' })).toMatchObject({
          verdict: 'redirect',
          proxyPort,
        });
      } finally {
        await new Promise((r) => server.close(r));
      }
    });

    it('cannot redirect into a pod from outside the node (tc egress): dropped, said why', () => {
      load(irWith({ ingress: rules(redirect(15001)) }));
      expect(run('to', into(DB, 8080)).event).toMatchObject({ verdict: 'drop', reason: 'proxyUnreachable' });
    });
  });
});
