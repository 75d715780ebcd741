// The chart's renders applied to the real API server with server-side apply in dry-run mode (what
// `kubectl apply --server-side --dry-run=server` does), through @kubernetes/client-node: every object
// goes through decoding, defaulting, validation and admission, and nothing is stored. The Gateway API
// CRDs are applied (dry run) first; the GatewayClass then validates against the CRDs the harness
// installed.

import { ApiException, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { kubeConfigFor, uniqueName, useKube } from '../harness/kubeContext.js';
import { ensureChartCrds, type Obj, parseManifests, podSpec, render, VARIANTS } from './chart.js';

const FIELD_MANAGER = 'skein-chart-test';

/** Kinds in the order Helm installs them (releaseutil.InstallOrder), CRDs ahead of everything. */
const ORDER = [
  'CustomResourceDefinition',
  'PodDisruptionBudget',
  'ServiceAccount',
  'ConfigMap',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'DaemonSet',
  'Deployment',
  'IngressClass',
  'GatewayClass',
];

function sorted(objects: readonly Obj[]): Obj[] {
  const rank = (o: Obj): number => {
    const i = ORDER.indexOf(o.kind ?? '');
    if (i < 0) throw new Error(`no install order for kind ${o.kind}: add it to ORDER`);
    return i;
  };
  return [...objects].sort((a, b) => rank(a) - rank(b));
}

/** The API server's message for a failed call (its Status), or rethrows anything else. */
function statusMessage(err: unknown): { code: number; message: string } {
  if (!(err instanceof ApiException)) throw err;
  const body = (typeof err.body === 'string' ? JSON.parse(err.body) : err.body) as {
    message?: string;
  } | null;
  return { code: err.code, message: body?.message ?? String(err.body) };
}

describe('the chart, server-side dry-run applied to the real API server', () => {
  const kube = useKube();
  const namespace = uniqueName('chart-apply');
  // A release name of its own, so the cluster-scoped names cannot meet other tests' objects.
  const release = uniqueName('rel');
  let api: KubernetesObjectApi;

  beforeAll(async () => {
    await ensureChartCrds();
    api = KubernetesObjectApi.makeApiClient(kubeConfigFor(kube()));
    // Namespaced objects need their namespace to exist, even in a dry run.
    await api.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  });

  const dryRun = (o: Obj): Promise<Obj> =>
    api.patch(o, undefined, 'All', FIELD_MANAGER, true, PatchStrategy.ServerSideApply) as Promise<Obj>;

  for (const [name, values] of Object.entries(VARIANTS)) {
    it(`accepts every object of the ${name} variant, and stores none`, async () => {
      const objects = sorted(parseManifests(await render({ release, namespace, values, includeCrds: true })));
      const kinds = new Set(objects.map((o) => o.kind));
      for (const k of ['DaemonSet', 'Deployment', 'ClusterRole', 'Role', 'GatewayClass', 'IngressClass']) {
        expect(kinds.has(k), k).toBe(true);
      }
      expect(kinds.has('CustomResourceDefinition')).toBe(name !== 'no-crds-custom-image');

      const failures: string[] = [];
      const accepted: Obj[] = [];
      for (const o of objects) {
        try {
          accepted.push(await dryRun(o));
        } catch (err) {
          const { code, message } = statusMessage(err);
          failures.push(`${o.kind} ${o.metadata?.name}: ${code} ${message}`);
        }
      }
      expect(failures).toEqual([]);

      // The server did the work: it defaulted fields the chart leaves out.
      const ds = accepted.find((o) => o.kind === 'DaemonSet');
      if (ds === undefined) throw new Error('no DaemonSet came back');
      const agent = podSpec(ds).containers.find((c) => c.name === 'agent') as
        | Record<string, unknown>
        | undefined;
      expect(agent?.['terminationMessagePath']).toBe('/dev/termination-log');
      expect((ds['metadata'] as { namespace?: string }).namespace).toBe(namespace);

      // And kept nothing: a dry run persists no object, cluster-scoped or namespaced.
      for (const o of objects.filter((x) => ['DaemonSet', 'ClusterRole', 'Role'].includes(x.kind ?? ''))) {
        const err = await api.read(o as Obj & { metadata: { name: string } }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, `${o.kind} ${o.metadata?.name} was stored`).toBeInstanceOf(ApiException);
        expect((err as ApiException<unknown>).code).toBe(404);
      }
    });
  }

  it('is a real check: the server refuses a pod spec the chart must not render', async () => {
    // Bidirectional propagation on the unprivileged agent container (the chart keeps it to the
    // privileged init container): the API server's pod validation forbids it.
    const objects = parseManifests(await render({ release, namespace }));
    const ds = structuredClone(objects.find((o) => o.kind === 'DaemonSet')) as Obj;
    const agent = podSpec(ds).containers.find((c) => c.name === 'agent') as unknown as {
      volumeMounts: { name: string; mountPropagation?: string }[];
    };
    const bpffs = agent.volumeMounts.find((m) => m.name === 'bpffs');
    if (bpffs === undefined) throw new Error('the agent container has no bpffs mount');
    bpffs.mountPropagation = 'Bidirectional';
    const err = await dryRun(ds).then(
      () => undefined,
      (e: unknown) => e,
    );
    const { code, message } = statusMessage(err);
    expect(code).toBe(422);
    expect(message).toContain('Bidirectional mount propagation is available only to privileged containers');
  });
});
