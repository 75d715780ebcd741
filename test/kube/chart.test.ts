// The Helm chart with the real helm (v3.22, built from its Go module): strict lint, golden renders of
// the default values and two variants, the CRD toggle, and values the schema or the templates refuse
// with a message naming the value.

import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/cli/configFile.js';
import { kubeBinaries } from '../harness/kubeBinaries.js';
import {
  CHART_DIR,
  CRDS_DIR,
  container,
  ensureChartCrds,
  helm,
  KUBE_VERSION,
  only,
  parseManifests,
  podSpec,
  render,
  template,
  VARIANTS,
} from './chart.js';

describe('the Helm chart', () => {
  beforeAll(async () => {
    await ensureChartCrds();
  });

  it('passes helm lint --strict, with its values and with each variant', async () => {
    const r = await helm(['lint', '--strict', '--kube-version', KUBE_VERSION, CHART_DIR]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.code).toBe(0);
    for (const [name, values] of Object.entries(VARIANTS)) {
      const set = Object.entries(values).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
      const v = await helm([
        'lint',
        '--strict',
        '--kube-version',
        KUBE_VERSION,
        CHART_DIR,
        ...set.flatMap((s) => ['--set-json', s]),
      ]);
      expect(v.code, `${name}: ${v.stdout}${v.stderr}`).toBe(0);
    }
  });

  for (const [name, values] of Object.entries(VARIANTS)) {
    it(`renders the ${name} variant as the golden file testdata/chart/${name}.yaml`, async () => {
      const text = await render({ values });
      await expect(text).toMatchFileSnapshot(`testdata/chart/${name}.yaml`);
    });
  }

  it('adds the Gateway API CRDs (standard channel, verbatim from the Go module) only with gatewayAPI.installCRDs', async () => {
    const files = (await readdir(CRDS_DIR)).filter((f) => f.endsWith('.yaml')).sort();
    expect(files).toContain('gateway.networking.k8s.io_httproutes.yaml');
    const source = path.join(kubeBinaries().gatewayApiCrds, 'standard');
    for (const f of files) {
      expect(await readFile(path.join(CRDS_DIR, f), 'utf8')).toBe(
        await readFile(path.join(source, f), 'utf8'),
      );
    }

    const on = parseManifests(await render({ includeCrds: true }));
    const crds = on.filter((o) => o.kind === 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata?.name).sort()).toEqual([
      'backendtlspolicies.gateway.networking.k8s.io',
      'gatewayclasses.gateway.networking.k8s.io',
      'gateways.gateway.networking.k8s.io',
      'grpcroutes.gateway.networking.k8s.io',
      'httproutes.gateway.networking.k8s.io',
      'listenersets.gateway.networking.k8s.io',
      'referencegrants.gateway.networking.k8s.io',
      'tcproutes.gateway.networking.k8s.io',
      'tlsroutes.gateway.networking.k8s.io',
      'udproutes.gateway.networking.k8s.io',
    ]);
    for (const c of crds) {
      expect(c.metadata?.annotations?.['gateway.networking.k8s.io/channel']).toBe('standard');
    }
    // No admission policy rides along: crds/ is for types.
    expect(on.some((o) => o.kind === 'ValidatingAdmissionPolicy')).toBe(false);

    const off = parseManifests(await render({ includeCrds: true, set: ['gatewayAPI.installCRDs=false'] }));
    expect(off.filter((o) => o.kind === 'CustomResourceDefinition')).toEqual([]);
    // The GatewayClass stays: its CRD comes from elsewhere.
    expect(only(off, 'GatewayClass', 'skein')['spec']).toMatchObject({
      controllerName: 'skein.io/gateway-controller',
    });
  });

  it('fails with the command to run when gatewayAPI.installCRDs is on but crds/ was never generated', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-chart-copy-'));
    try {
      const copy = path.join(dir, 'skein');
      await cp(CHART_DIR, copy, { recursive: true });
      await rm(path.join(copy, 'charts/gateway-api-crds/crds'), { recursive: true, force: true });
      const args = ['template', 'skein', copy, '--kube-version', KUBE_VERSION];
      const r = await helm(args);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        'gatewayAPI.installCRDs is true, but the chart holds no Gateway API CRDs: run `node scripts/chart-crds.mjs`',
      );
      const off = await helm([...args, '--set', 'gatewayAPI.installCRDs=false']);
      expect(off.stderr).toBe('');
      expect(off.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('probes the agent and Envoy on 127.0.0.1 (host network), the operator on its Pod IP', async () => {
    const objects = parseManifests(await render());
    const agent = podSpec(only(objects, 'DaemonSet'));
    expect(agent.hostNetwork).toBe(true);
    for (const c of agent.containers) {
      for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) {
        expect(p?.httpGet?.host, `${c.name}`).toBe('127.0.0.1');
      }
    }
    expect(container(agent, 'agent').readinessProbe?.httpGet).toEqual({
      host: '127.0.0.1',
      port: 9902,
      path: '/readyz',
    });
    expect(container(agent, 'envoy').readinessProbe?.httpGet).toEqual({
      host: '127.0.0.1',
      port: 9901,
      path: '/ready',
    });
    const op = podSpec(only(objects, 'Deployment'));
    expect(op.hostNetwork).toBeUndefined();
    const operator = container(op, 'operator');
    expect(operator.readinessProbe?.httpGet).toEqual({ port: 'status', path: '/readyz' });
    expect(operator.args).toContain('--status-address=0.0.0.0');
  });

  it('drops every capability and adds back only the listed ones; only the bpffs init container is privileged', async () => {
    const objects = parseManifests(await render());
    const agent = podSpec(only(objects, 'DaemonSet'));
    const operator = podSpec(only(objects, 'Deployment'));
    const caps = Object.fromEntries(
      [...agent.containers, ...operator.containers].map((c) => [c.name, c.securityContext?.capabilities]),
    );
    expect(caps).toEqual({
      agent: { drop: ['ALL'], add: ['BPF', 'NET_ADMIN', 'PERFMON'] },
      // NET_ADMIN with l7Proxy (the default): the transparent listener and its marked upstreams.
      envoy: { drop: ['ALL'], add: ['NET_BIND_SERVICE', 'NET_ADMIN'] },
      operator: { drop: ['ALL'] },
    });
    const noProxy = podSpec(only(parseManifests(await render({ set: ['l7Proxy=false'] })), 'DaemonSet'));
    expect(noProxy.containers.find((c) => c.name === 'envoy')?.securityContext?.capabilities).toEqual({
      drop: ['ALL'],
      add: ['NET_BIND_SERVICE'],
    });
    for (const c of [...agent.containers, ...operator.containers]) {
      expect(c.securityContext?.['privileged'], c.name).toBeUndefined();
      expect(c.securityContext?.['readOnlyRootFilesystem'], c.name).toBe(true);
      expect(c.securityContext?.['allowPrivilegeEscalation'], c.name).toBe(false);
    }
    expect(agent.initContainers?.map((c) => [c.name, c.securityContext?.['privileged']])).toEqual([
      ['mount-bpffs', true],
    ]);
    const none = podSpec(
      only(parseManifests(await render({ set: ['agent.bpf.autoMount=false'] })), 'DaemonSet'),
    );
    expect(none.initContainers).toBeUndefined();
  });

  it('makes the IngressClass the default only when asked', async () => {
    const plain = only(parseManifests(await render()), 'IngressClass', 'skein');
    expect(plain.metadata?.annotations).toBeUndefined();
    const dflt = only(
      parseManifests(await render({ set: ['ingressClass.default=true'] })),
      'IngressClass',
      'skein',
    );
    expect(dflt.metadata?.annotations).toEqual({ 'ingressclass.kubernetes.io/is-default-class': 'true' });
    expect(dflt['spec']).toEqual({ controller: 'skein.io/ingress-controller' });
  });

  it('writes the feature toggles to the settings ConfigMap', async () => {
    const cm = only(
      parseManifests(
        await render({ set: ['encryption.enabled=true', 'l7Proxy=false', 'kubeProxyReplacement=true'] }),
      ),
      'ConfigMap',
    );
    const data = cm['data'] as Record<string, string>;
    expect(data['config.yaml']).toContain('encryption:\n  enabled: true\n  type: wireguard\n');
    expect(data['config.yaml']).toContain('\nl7Proxy: false\nkubeProxyReplacement: true\n');
    // What the agent reads from it (`--config /etc/skein/config.yaml`, the same schema it checks).
    expect(parseConfig(parse(data['config.yaml'] ?? ''), 'config.yaml')).toMatchObject({
      encryption: { enabled: true, type: 'wireguard' },
      l7Proxy: false,
      kubeProxyReplacement: true,
      datapath: {
        pinRoot: '/sys/fs/bpf/skein',
        cgroupRoot: '/run/skein/cgroupv2',
        stateDir: '/var/lib/skein',
      },
    });
  });

  // Each bad value fails `helm template` with the schema's message, naming the value.
  const refused: readonly [string, string][] = [
    ['encryption.type=ipsec', "at '/encryption/type': value must be 'wireguard'"],
    ['encryption.enabled=yes', "at '/encryption/enabled': got string, want boolean"],
    ['l7Proxy=maybe', "at '/l7Proxy': got string, want boolean"],
    ['kubeProxyReplacement=strict', "at '/kubeProxyReplacement': got string, want boolean"],
    ['gatewayAPI.installCRDs=sometimes', "at '/gatewayAPI/installCRDs': got string, want boolean"],
    ['encryption.enable=true', "at '/encryption': additional properties 'enable' not allowed"],
    ['agent.statusPort=70000', "at '/agent/statusPort': maximum: got 70,000, want 65,535"],
    ['image.digest=sha256:abc', "at '/image/digest': 'sha256:abc' does not match pattern"],
    [
      'operator.podAntiAffinity=always',
      "at '/operator/podAntiAffinity': value must be one of 'soft', 'hard'",
    ],
    ['logLevel=verbose', "at '/logLevel': value must be one of"],
    ['agent.runDir=relative/dir', "at '/agent/runDir': 'relative/dir' does not match pattern '^/'"],
  ];
  for (const [set, message] of refused) {
    it(`refuses ${set}`, async () => {
      const r = await template({ set: [set] });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain("values don't meet the specifications of the schema(s)");
      expect(r.stderr).toContain(message);
    });
  }

  it('refuses leader election timings the operator would reject', async () => {
    const r = await template({ set: ['operator.leaderElection.retryPeriod=12'] });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'operator.leaderElection: need retryPeriod < renewDeadline < leaseDuration, got 12, 10 and 15',
    );
  });
});
