// The legacy tc attachment (kernels without tcx, forced here with attachMode 'tc'): the programs run as
// direct-action filters of one handle and priority on each interface's clsact qdisc, a restart replaces
// them in place, and cleanup removes exactly them (the qdisc, which others may use, stays).

import { afterAll, beforeAll, expect, it } from 'vitest';
import { cleanupPolicy, POLICY_TC_FILTER } from '../../src/datapath/policy.js';
import { describeKernel, exec, kernelSuite } from './helpers.js';
import {
  namespaceObject,
  networkPolicy,
  type PodSpec,
  type PolicyWorld,
  type Result,
  startPolicyWorld,
} from './policyWorld.js';

const pods: PodSpec[] = [
  { namespace: 'x', name: 'a', labels: { pod: 'a' }, address: '10.79.1.10', tcp: [80], udp: [] },
  { namespace: 'x', name: 'b', labels: { pod: 'b' }, address: '10.79.1.20', tcp: [80], udp: [] },
  { namespace: 'x', name: 'c', labels: { pod: 'c' }, address: '10.79.1.30', tcp: [80], udp: [] },
];
const to = (address: string) => ({ proto: 'tcp' as const, host: address, port: 80 });
const outcome = (rs: readonly Result[]): string[] =>
  rs.map((r) => (r.ok ? `ok ${r.reply}` : (r.code ?? 'error')));
const denyB = networkPolicy('x', 'deny-b', { podSelector: { matchLabels: { pod: 'b' } } });

describeKernel(kernelSuite('policy attached as legacy tc filters (no tcx)'), () => {
  let w: PolicyWorld;

  beforeAll(async () => {
    w = await startPolicyWorld(pods, [namespaceObject('x')], {
      nodeAddress: '10.79.0.1',
      datapath: { attachMode: 'tc' },
    });
  }, 120_000);
  afterAll(async () => {
    await w?.stop();
  });

  /** `tc filter show` of one interface and direction, in the node's namespace. */
  const filters = (dev: string, dir: 'ingress' | 'egress'): Promise<string> =>
    exec('nsenter', [`--net=${w.node.path}`, '--', 'tc', 'filter', 'show', 'dev', dev, dir]);
  const hostOf = (name: string): string => w.pods.get(`x/${name}`)?.hostInterface ?? '';

  it('attaches one filter per interface and direction, and enforces through it', async () => {
    const result = (await w.apply([denyB])).result;
    expect(result).toMatchObject({ attached: 6, updated: 0, detached: 0 });
    expect(w.dp.attachMode).toBe('tc');
    const ingress = await filters(hostOf('a'), 'ingress');
    expect(ingress).toContain(`pref ${POLICY_TC_FILTER.priority} bpf`);
    expect(ingress).toContain(`handle 0x${POLICY_TC_FILTER.handle.toString(16)}`);
    expect(ingress).toContain('direct-action');
    expect(ingress).toContain(` id ${w.dp.fromEndpoint.info().id} `);
    expect(await filters(hostOf('a'), 'egress')).toContain(` id ${w.dp.toEndpoint.info().id} `);
    expect(outcome(await w.probe('x/a', [to('10.79.1.20'), to('10.79.1.30')]))).toEqual([
      'TIMEOUT',
      'ok c:hi',
    ]);
    // Nothing changed: nothing is attached again.
    expect((await w.apply([denyB])).result).toMatchObject({ attached: 0, updated: 0, detached: 0 });
  });

  it('replaces the filters in place on a restart, with traffic flowing', async () => {
    const loop = w.spawn('x/a', 'probe.mjs', ['1000', 'loop', 'tcp', '10.79.1.30', '80', '20', '50']);
    for (let i = 0; i < 100 && loop.lines.length < 5; i++) await new Promise((r) => setTimeout(r, 20));
    w.restart();
    const result = (await w.apply([denyB])).result;
    expect(result).toMatchObject({ attached: 0, updated: 6, detached: 0 });
    expect(result.written).toEqual({ endpoints: 0, ipcache: 0, cidrs: 0, policy: 0 });
    expect(await loop.exited).toBe(0);
    const attempts = loop.lines.map((l) => JSON.parse(l) as Result);
    expect(attempts).toHaveLength(20);
    expect(attempts.filter((a) => !a.ok)).toEqual([]);
    // Still one filter of ours per direction, now the new program.
    const ingress = await filters(hostOf('a'), 'ingress');
    expect(ingress.match(/ direct-action /g)).toHaveLength(1);
    expect(ingress).toContain(` id ${w.dp.fromEndpoint.info().id} `);
    expect(outcome(await w.probe('x/a', [to('10.79.1.20')]))).toEqual(['TIMEOUT']);
  });

  it('detaches the filters of an endpoint that goes away, and cleans up all of them, keeping the qdisc', async () => {
    // Without pod c in the IR (its interface still there), its two filters go.
    const { ir } = await w.apply([denyB]);
    const result = w.dp.reconcile(
      { ...ir, endpoints: ir.endpoints.filter((e) => e.name !== 'x/c') },
      new Map([...w.pods.values()].map((p) => [p.hostInterface, p.ifindex])),
    );
    expect(result).toMatchObject({ attached: 0, detached: 2 });
    expect(await filters(hostOf('c'), 'ingress')).not.toContain('direct-action');
    const cleaned = cleanupPolicy({ pinRoot: w.bpffs.path, netns: w.node.path });
    expect(cleaned.detached).toBe(4);
    for (const name of ['a', 'b']) {
      expect(await filters(hostOf(name), 'ingress')).not.toContain('direct-action');
      expect(await filters(hostOf(name), 'egress')).not.toContain('direct-action');
    }
    const qdisc = await exec('nsenter', [
      `--net=${w.node.path}`,
      '--',
      'tc',
      'qdisc',
      'show',
      'dev',
      hostOf('a'),
    ]);
    expect(qdisc).toContain('clsact');
    expect(outcome(await w.probe('x/a', [to('10.79.1.20')]))).toEqual(['ok b:hi']);
  });
});
