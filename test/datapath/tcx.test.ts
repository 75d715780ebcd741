// The tc program attached with tcx on a real interface: a veth pair whose far end lives in a network
// namespace the test made (and holds the only address); packets sent from there arrive at the near
// end's ingress, where skein_tc_flow reports them. The near end has no address, so the stack drops
// them right after: nothing leaves the pair.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type BpfLink, openPinnedLink, type RingBuffer, unpin } from '../../src/datapath/bpfObject.js';
import type { FlowEvent } from '../../src/datapath/codecs/flow.js';
import { LbDatapath } from '../../src/datapath/lb.js';
import {
  describeKernel,
  exec,
  kernelSuite,
  type Made,
  makeNetns,
  mountBpffs,
  removeAll,
  runInNetns,
  runToEnd,
} from './helpers.js';

const NEAR = `skt${process.pid % 1_000_000}a`;
const FAR = `skt${process.pid % 1_000_000}b`;
const FAR_ADDRESS = '10.213.0.2';
const NO_ONE = '10.213.0.1';

describeKernel(kernelSuite('tc program attached with tcx'), () => {
  let bpffs: Made | undefined;
  let netns: (Made & { name: string }) | undefined;
  let veth: Made | undefined;
  let lb: LbDatapath | undefined;
  let flows: RingBuffer<FlowEvent> | undefined;
  let ifindex = 0;

  beforeAll(async () => {
    bpffs = await mountBpffs();
    netns = await makeNetns();
    await exec('ip', ['link', 'add', NEAR, 'type', 'veth', 'peer', 'name', FAR, 'netns', netns.name]);
    veth = { path: NEAR, remove: () => exec('ip', ['link', 'del', NEAR]).then(() => {}) };
    await exec('ip', ['link', 'set', NEAR, 'up']);
    await exec('ip', ['-n', netns.name, 'addr', 'add', `${FAR_ADDRESS}/24`, 'dev', FAR]);
    await exec('ip', ['-n', netns.name, 'link', 'set', FAR, 'up']);
    const mac = (await readFile(`/sys/class/net/${NEAR}/address`, 'utf8')).trim();
    // A static neighbour: the datagrams go out at once, with no ARP first.
    await exec('ip', [
      '-n',
      netns.name,
      'neigh',
      'add',
      NO_ONE,
      'lladdr',
      mac,
      'dev',
      FAR,
      'nud',
      'permanent',
    ]);
    ifindex = Number((await readFile(`/sys/class/net/${NEAR}/ifindex`, 'utf8')).trim());
    lb = LbDatapath.load({ pinRoot: bpffs.path, tcEvents: true });
    flows = lb.flows();
  });
  afterAll(async () => {
    flows?.close();
    lb?.close();
    await removeAll([bpffs, netns, veth]);
  });

  /** Sends UDP datagrams from inside the namespace to NO_ONE:9999 (they reach NEAR's ingress). */
  const send = (n: number): Promise<unknown[]> =>
    runToEnd(runInNetns(netns?.path ?? '', 'send-udp.mjs', [NO_ONE, '9999', String(n)]));

  async function eventsFor(n: number): Promise<FlowEvent[]> {
    const seen: FlowEvent[] = [];
    for (let i = 0; i < 20 && seen.filter((e) => e.destinationPort === 9999).length < n; i++) {
      seen.push(...((await flows?.poll(100)) ?? []));
    }
    return seen.filter((e) => e.destinationPort === 9999);
  }

  it('sees the packets arriving on the interface, and stops when detached', async () => {
    const prog = lb?.program('skein_tc_flow');
    const link = prog?.attachTcx(ifindex, 'ingress') as BpfLink;
    prog?.close();
    try {
      flows?.consume();
      await send(3);
      const events = await eventsFor(3);
      expect(events).toHaveLength(3);
      expect(events[0]).toMatchObject({
        hook: 'tc',
        verdict: 'pass',
        reason: 'none',
        ifindex,
        source: FAR_ADDRESS,
        destination: NO_ONE,
        destinationPort: 9999,
        protocol: 17,
      });
    } finally {
      link.close(); // not pinned: closing detaches
    }
    flows?.consume();
    await send(2);
    expect(await flows?.poll(200)).toEqual([]);
  });

  it('stays attached through a pinned link after every handle is closed', async () => {
    const pin = path.join(bpffs?.path ?? '', 'tcx-ingress');
    const prog = lb?.program('skein_tc_flow');
    const link = prog?.attachTcx(ifindex, 'ingress') as BpfLink;
    prog?.close();
    link.pin(pin);
    link.close();
    try {
      flows?.consume();
      await send(2);
      expect(await eventsFor(2)).toHaveLength(2);
      // The pin can be opened again (an agent after a restart) and detached from there.
      const again = openPinnedLink(pin);
      again.detach();
      again.close();
      flows?.consume();
      await send(2);
      expect(await flows?.poll(200)).toEqual([]);
    } finally {
      unpin(pin);
    }
  });

  it('refuses an interface that does not exist', () => {
    const prog = lb?.program('skein_tc_flow');
    try {
      expect(() => prog?.attachTcx(0x7ffffff0, 'egress')).toThrow(
        /SKEIN_BPF_ATTACH_FAILED: cannot attach .*errno 19/,
      );
    } finally {
      prog?.close();
    }
  });
});
