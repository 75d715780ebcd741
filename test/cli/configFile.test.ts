import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ConfigCode, defaultConfig, loadConfigFile, parseConfig } from '../../src/cli/configFile.js';

// The settings file of `skein agent` and `skein operator`: what the Helm chart writes parses to what it
// says, every field has the chart's default, and bad values are refused naming the field.

const CHART_GOLDENS = path.resolve(import.meta.dirname, '../kube/testdata/chart');

/** config.yaml of the ConfigMap in a rendered chart (the goldens are `helm template` output). */
function chartConfig(file: string): unknown {
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const o = doc.toJS() as { kind?: string; data?: Record<string, string> } | null;
    const text = o?.kind === 'ConfigMap' ? o.data?.['config.yaml'] : undefined;
    if (text !== undefined) return parseAllDocuments(text)[0]?.toJS();
  }
  throw new Error(`${file} has no ConfigMap with config.yaml`);
}

describe('the settings file', () => {
  it('takes every rendering of the chart, and reads it as the chart means it', () => {
    const files = readdirSync(CHART_GOLDENS).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const f of files) parseConfig(chartConfig(path.join(CHART_GOLDENS, f)), f);
    const config = parseConfig(chartConfig(path.join(CHART_GOLDENS, 'default.yaml')), 'default.yaml');
    expect(config).toEqual({
      gatewayControllerName: 'skein.io/gateway-controller',
      ingressControllerName: 'skein.io/ingress-controller',
      encryption: { enabled: false, type: 'wireguard' },
      l7Proxy: true,
      kubeProxyReplacement: false,
      datapath: {
        enabled: true,
        bpffsRoot: '/sys/fs/bpf',
        pinRoot: '/sys/fs/bpf/skein',
        cgroupRoot: '/run/skein/cgroupv2',
        stateDir: '/var/lib/skein',
        proxyPort: 15001,
        flowEvents: 'flows',
      },
    });
  });

  it('has the chart’s defaults for what it does not say', () => {
    expect(defaultConfig()).toEqual(parseConfig({}, 'x'));
    expect(parseConfig({ datapath: { netns: '/run/netns/node' } }, 'x').datapath).toEqual({
      enabled: true,
      bpffsRoot: '/sys/fs/bpf',
      cgroupRoot: '/sys/fs/cgroup',
      stateDir: '/var/lib/skein',
      netns: '/run/netns/node',
      proxyPort: 15001,
      flowEvents: 'flows',
    });
  });

  it.each([
    [{ l7Proxy: 'yes' }, 'l7Proxy: Invalid input: expected boolean, received string (not "yes")'],
    [
      { datapath: { pinRoot: '/tmp/pins' } },
      'datapath.pinRoot: must be a directory under datapath.bpffsRoot (not "/tmp/pins")',
    ],
    [
      { datapath: { cgroupRoot: 'sys/fs/cgroup' } },
      'datapath.cgroupRoot: must be an absolute, normalised path (not "sys/fs/cgroup")',
    ],
    [
      { datapath: { proxyPort: 70000 } },
      'datapath.proxyPort: Too big: expected number to be <=65535 (not 70000)',
    ],
    [
      { datapath: { flowEvents: 'all' } },
      'datapath.flowEvents: Invalid option: expected one of "none"|"drops"|"flows"|"packets" (not "all")',
    ],
    [
      { encryption: { enabled: true, type: 'ipsec' } },
      'encryption.type: Invalid input: expected "wireguard" (not "ipsec")',
    ],
    [
      { gatewayControllerName: 'skein' },
      'gatewayControllerName: must be a domain-prefixed path such as example.com/gateway-controller (not "skein")',
    ],
    [
      { datapath: { pinroot: '/sys/fs/bpf/x' }, l7proxy: true },
      'datapath.pinroot: Skein knows no such setting; l7proxy: Skein knows no such setting',
    ],
  ])('refuses %j, naming the field', (data, message) => {
    expect(() => parseConfig(data, '/etc/skein/config.yaml')).toThrow(
      expect.objectContaining({
        code: ConfigCode.Invalid,
        message: `Cannot use the settings file /etc/skein/config.yaml: ${message}`,
      }),
    );
  });

  it('says when the file is missing or not YAML', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-config-'));
    try {
      expect(() => loadConfigFile(path.join(dir, 'none.yaml'))).toThrow(
        expect.objectContaining({
          code: ConfigCode.Unreadable,
          message: `Cannot read the settings file ${path.join(dir, 'none.yaml')}: it does not exist`,
        }),
      );
      const bad = path.join(dir, 'bad.yaml');
      await writeFile(bad, 'l7Proxy: [true\n');
      expect(() => loadConfigFile(bad)).toThrow(
        expect.objectContaining({
          code: ConfigCode.Unreadable,
          message: expect.stringMatching(/: it is not YAML \(/),
        }),
      );
      const empty = path.join(dir, 'empty.yaml');
      await writeFile(empty, '# nothing set\n');
      expect(loadConfigFile(empty)).toEqual(defaultConfig());
      const good = path.join(dir, 'good.yaml');
      await writeFile(good, 'kubeProxyReplacement: true\ndatapath:\n  proxyPort: 15006\n');
      expect(loadConfigFile(good)).toMatchObject({
        kubeProxyReplacement: true,
        datapath: { proxyPort: 15006 },
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
