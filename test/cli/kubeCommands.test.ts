import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// `skein agent` and `skein operator` refuse bad flags before they touch the network (exit 2, one line
// naming the flag). Running them against an API server is in test/kube/processes.test.ts.

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

async function skein(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(root, 'bin/skein'), ...args], {
      timeout: 30_000,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : -1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}

describe('skein agent / skein operator flags', () => {
  it('agent needs --node-name', async () => {
    const r = await skein(['agent', '--kubeconfig', '/nonexistent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'skein agent: SKEIN_CLI_INVALID_FLAG: Cannot start without --node-name: it names the Node this agent serves\n',
    );
  });

  it('agent refuses a missing kubeconfig with SKEIN_KUBE_CONFIG', async () => {
    const r = await skein(['agent', '--node-name', 'n1', '--kubeconfig', '/nonexistent/kubeconfig']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'skein agent: SKEIN_KUBE_CONFIG: cannot load the kubeconfig: /nonexistent/kubeconfig does not exist\n',
    );
  });

  it('agent checks ports and the Ingress flags it shares with skein up', async () => {
    const port = await skein(['agent', '--node-name', 'n1', '--status-port', '70000']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('Cannot use --status-port "70000": it must be a port number in 0..65535');
    const ingress = await skein(['agent', '--node-name', 'n1', '--ingress-mode', 'both']);
    expect(ingress.code).toBe(2);
    expect(ingress.stderr).toContain('Cannot use --ingress-mode "both": it takes shared or dedicated');
  });

  it('operator refuses lease timings that could let two leaders overlap', async () => {
    const r = await skein(['operator', '--renew-deadline', '20', '--kubeconfig', '/nonexistent']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      'skein operator: SKEIN_CLI_INVALID_FLAG: Cannot elect a leader with --retry-period 2, --renew-deadline 20 and --lease-duration 15: need retry period < renew deadline < lease duration\n',
    );
    const name = await skein(['operator', '--lease-name', 'Not_A_Name']);
    expect(name.code).toBe(2);
    expect(name.stderr).toContain('Cannot use --lease-name "Not_A_Name": it must be a DNS-1123 label');
  });

  it('lists agent and operator in the usage, and each has --help', async () => {
    expect((await skein(['--help'])).stdout).toMatch(
      /agent {7}Run the per-node agent[\s\S]*operator {4}Run the cluster-wide operator/,
    );
    const agentHelp = await skein(['agent', '--help']);
    expect(agentHelp.code).toBe(0);
    for (const flag of [
      '--node-name',
      '--kubeconfig',
      '--xds-socket',
      '--no-envoy',
      '--bootstrap-out',
      '--status-port',
      '--ingress-address',
      '--config',
      '--cleanup',
      '--no-datapath',
      '--kube-proxy-replacement',
      '--l7-proxy',
      '--pin-root',
      '--cgroup-root',
    ])
      expect(agentHelp.stdout).toContain(flag);
    const operatorHelp = await skein(['operator', '--help']);
    for (const flag of [
      '--lease-namespace',
      '--lease-duration',
      '--renew-deadline',
      '--retry-period',
      '--ingress-status-address',
      '--config',
    ])
      expect(operatorHelp.stdout).toContain(flag);
  });

  it('agent and operator refuse a settings file they cannot use, naming the file and the field (exit 2)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-cli-config-'));
    try {
      const missing = path.join(dir, 'none.yaml');
      const r = await skein(['agent', '--node-name', 'n1', '--config', missing]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        `skein agent: SKEIN_CONFIG_UNREADABLE: Cannot read the settings file ${missing}: it does not exist\n`,
      );
      const bad = path.join(dir, 'bad.yaml');
      await writeFile(
        bad,
        'kubeProxyReplacement: sometimes\ndatapath:\n  cgroupRoot: /sys/fs/cgroup\n  bpffs: /x\n',
      );
      for (const command of ['agent', 'operator']) {
        const b = await skein([
          command,
          ...(command === 'agent' ? ['--node-name', 'n1'] : []),
          '--config',
          bad,
        ]);
        expect(b.code).toBe(2);
        expect(b.stderr).toBe(
          `skein ${command}: SKEIN_CONFIG_INVALID: Cannot use the settings file ${bad}: kubeProxyReplacement: Invalid input: expected boolean, received string (not "sometimes"); datapath.bpffs: Skein knows no such setting\n`,
        );
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('agent checks the datapath flags that override the settings file', async () => {
    const lb = await skein(['agent', '--node-name', 'n1', '--kube-proxy-replacement', 'yes']);
    expect(lb.code).toBe(2);
    expect(lb.stderr).toContain('Cannot use --kube-proxy-replacement "yes": it takes true or false');
    const pin = await skein(['agent', '--node-name', 'n1', '--pin-root', 'bpf/skein']);
    expect(pin.stderr).toContain('Cannot use --pin-root "bpf/skein": it must be an absolute path');
    const events = await skein(['agent', '--node-name', 'n1', '--flow-events', 'some']);
    expect(events.stderr).toContain('Cannot use --flow-events "some": it takes none|drops|flows|packets');
    const cleanup = await skein(['agent', '--cleanup', '--config', '/nonexistent/config.yaml']);
    expect(cleanup).toMatchObject({ code: 2, stdout: '' });
    expect(cleanup.stderr).toContain('SKEIN_CONFIG_UNREADABLE');
  });
});
