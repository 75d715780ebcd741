// The kinds the policy translator reads, NetworkPolicy and Pod, from the standalone source: what the API
// server accepts loads (sorted, defaults applied), what it rejects is dropped with a diagnostic naming the
// object and the field.

import { describe, expect, it } from 'vitest';
import { FileCache } from '../../src/sources/file/FileCache.js';

const valid = `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - namespaceSelector: { matchLabels: { team: a } }
          podSelector: { matchExpressions: [{ key: role, operator: In, values: [client] }] }
        - ipBlock: { cidr: 10.0.0.0/8, except: [10.1.0.0/16] }
      ports:
        - { port: http }
        - { protocol: UDP, port: 5000, endPort: 5010 }
  egress:
    - to: [{ ipBlock: { cidr: "2001:db8::/32", except: ["2001:db8:1::/48"] } }]
---
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: shop, labels: { app: web } }
spec:
  nodeName: node-a
  restartPolicy: Always
  containers:
    - name: web
      image: nginx
      ports: [{ name: http, containerPort: 8080 }]
status:
  phase: Running
  podIP: 10.244.0.5
  podIPs: [{ ip: 10.244.0.5 }]
  hostIP: 192.168.0.10
`;

describe('NetworkPolicy and Pod from the standalone source', () => {
  it('load without diagnostics, pod fields the schema does not judge included', () => {
    const cache = new FileCache();
    cache.update('p.yaml', valid);
    const { objects, diagnostics } = cache.snapshot();
    expect(diagnostics).toEqual([]);
    expect(objects.networkPolicies.map((p) => p.metadata?.name)).toEqual(['web']);
    expect(objects.networkPolicies[0]?.spec?.ingress?.[0]?.ports?.[1]).toEqual({
      protocol: 'UDP',
      port: 5000,
      endPort: 5010,
    });
    expect(objects.pods[0]?.spec?.containers[0]?.ports?.[0]).toEqual({ name: 'http', containerPort: 8080 });
    expect(objects.pods[0]?.status?.hostIP).toBe('192.168.0.10');
    expect(objects.origins.get('Pod/shop/web-1')).toBe('p.yaml#1');
  });

  const policy = (spec: string): string =>
    `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: { name: np }\nspec:\n${spec}`;
  const cases = [
    {
      name: 'no podSelector',
      yaml: policy('  ingress: []\n'),
      field: 'spec.podSelector',
      message: /is required/,
    },
    {
      name: 'endPort with a named port',
      yaml: policy('  podSelector: {}\n  ingress: [{ ports: [{ port: http, endPort: 90 }] }]\n'),
      field: 'spec.ingress[0].ports[0].endPort',
      message: /numeric port/,
    },
    {
      name: 'endPort below port',
      yaml: policy('  podSelector: {}\n  egress: [{ ports: [{ port: 90, endPort: 80 }] }]\n'),
      field: 'spec.egress[0].ports[0].endPort',
      message: /greater than or equal/,
    },
    {
      name: 'an except outside the cidr',
      yaml: policy(
        '  podSelector: {}\n  ingress: [{ from: [{ ipBlock: { cidr: 10.0.0.0/16, except: [10.1.0.0/24] } }] }]\n',
      ),
      field: 'spec.ingress[0].from[0].ipBlock.except[0]',
      message: /strict subset of 10.0.0.0\/16/,
    },
    {
      name: 'an ipBlock with a selector',
      yaml: policy(
        '  podSelector: {}\n  ingress: [{ from: [{ ipBlock: { cidr: 10.0.0.0/16 }, podSelector: {} }] }]\n',
      ),
      field: 'spec.ingress[0].from[0].ipBlock',
      message: /may not be set with podSelector/,
    },
    {
      name: 'a peer with nothing in it',
      yaml: policy('  podSelector: {}\n  ingress: [{ from: [{}] }]\n'),
      field: 'spec.ingress[0].from[0]',
      message: /one of podSelector, namespaceSelector or ipBlock/,
    },
    {
      name: 'In without values',
      yaml: policy('  podSelector: { matchExpressions: [{ key: app, operator: In }] }\n'),
      field: 'spec.podSelector.matchExpressions[0].values',
      message: /non-empty when operator is In/,
    },
    {
      name: 'an unknown operator',
      yaml: policy('  podSelector: { matchExpressions: [{ key: app, operator: Like, values: [a] }] }\n'),
      field: 'spec.podSelector.matchExpressions[0].operator',
      message: /In, NotIn, Exists, DoesNotExist/,
    },
    {
      name: 'a CIDR that is not one',
      yaml: policy('  podSelector: {}\n  egress: [{ to: [{ ipBlock: { cidr: 10.0.0.0/33 } }] }]\n'),
      field: 'spec.egress[0].to[0].ipBlock.cidr',
      message: /must be a CIDR/,
    },
    {
      name: 'a protocol NetworkPolicy does not have',
      yaml: policy('  podSelector: {}\n  ingress: [{ ports: [{ protocol: ICMP }] }]\n'),
      field: 'spec.ingress[0].ports[0].protocol',
      message: /TCP, UDP, SCTP/,
    },
    {
      name: 'a Pod address that is not one',
      yaml: 'apiVersion: v1\nkind: Pod\nmetadata: { name: np }\nspec: { containers: [{ name: c }] }\nstatus: { podIP: 10.0.0.300 }\n',
      field: 'status.podIP',
      message: /IP address/,
    },
  ];

  it.each(cases)('rejects $name', ({ yaml, field, message }) => {
    const cache = new FileCache();
    cache.update('bad.yaml', yaml);
    const { objects, diagnostics } = cache.snapshot();
    expect(objects.networkPolicies).toEqual([]);
    expect(objects.pods).toEqual([]);
    const d = diagnostics.find((x) => x.field === field);
    expect(d, JSON.stringify(diagnostics)).toMatchObject({ severity: 'error', origin: 'bad.yaml#0' });
    expect(d?.object).toMatch(/^(NetworkPolicy|Pod)\/default\/np$/);
    expect(d?.message).toMatch(message);
  });
});
