// The policy IR validator: a valid IR passes, and every SKEIN_POLICY_* code is reported with the path
// of the field it is about.

import { describe, expect, it } from 'vitest';
import type { PolicyEndpoint, PolicyIr, PolicyRule } from '../../src/model/policy.js';
import { PolicyErrorCode, validatePolicy } from '../../src/model/validatePolicy.js';

const rule = (over: Partial<PolicyRule> = {}): PolicyRule => ({
  peers: [300],
  ports: [],
  verdict: 'allow',
  origin: 't',
  ...over,
});
const endpoint = (over: Partial<PolicyEndpoint> = {}): PolicyEndpoint => ({
  name: 'x/a',
  addresses: ['10.0.0.1'],
  interface: 'lxc-a',
  identity: 300,
  ingress: { enforced: true, rules: [rule()] },
  egress: { enforced: false, rules: [] },
  ...over,
});
const valid: PolicyIr = {
  identities: [
    { id: 1, kind: 'reserved', name: 'host' },
    { id: 2, kind: 'reserved', name: 'world' },
    { id: 300, kind: 'labels', namespace: 'x', podLabels: { app: 'a' }, namespaceLabels: {} },
    { id: 0x0100_0000, kind: 'cidr', cidr: '10.0.0.0/8' },
  ],
  ipcache: [{ prefix: '10.0.0.1/32', identity: 300 }],
  endpoints: [endpoint()],
};

describe('validatePolicy', () => {
  it('accepts a valid IR, redirects included', () => {
    expect(validatePolicy(valid)).toEqual([]);
    const redirect = rule({
      peers: 'any',
      ports: [{ protocol: 'TCP', port: 8080 }],
      verdict: 'redirect',
      proxyPort: 15001,
    });
    expect(
      validatePolicy({ ...valid, endpoints: [endpoint({ egress: { enforced: true, rules: [redirect] } })] }),
    ).toEqual([]);
  });

  const withEndpoint = (over: Partial<PolicyEndpoint>): PolicyIr => ({
    ...valid,
    endpoints: [endpoint(over)],
  });
  const withRules = (...rules: PolicyRule[]): PolicyIr =>
    withEndpoint({ ingress: { enforced: true, rules } });
  const cases: { name: string; ir: PolicyIr; code: string; path: string }[] = [
    {
      name: 'an identity twice',
      ir: {
        ...valid,
        identities: [
          ...valid.identities,
          { id: 300, kind: 'labels', namespace: 'y', podLabels: {}, namespaceLabels: {} },
        ],
      },
      code: PolicyErrorCode.DuplicateIdentity,
      path: 'identities[4].id',
    },
    {
      name: 'one label set under two numbers',
      ir: {
        ...valid,
        identities: [
          ...valid.identities,
          { id: 301, kind: 'labels', namespace: 'x', podLabels: { app: 'a' }, namespaceLabels: {} },
        ],
      },
      code: PolicyErrorCode.DuplicateIdentity,
      path: 'identities[4]',
    },
    {
      name: 'a label identity in the CIDR range',
      ir: {
        ...valid,
        identities: [
          ...valid.identities,
          { id: 0x0100_0005, kind: 'labels', namespace: 'y', podLabels: {}, namespaceLabels: {} },
        ],
      },
      code: PolicyErrorCode.InvalidIdentity,
      path: 'identities[4].id',
    },
    {
      name: 'a reserved identity under another number',
      ir: { ...valid, identities: [{ id: 5, kind: 'reserved', name: 'host' }, ...valid.identities.slice(1)] },
      code: PolicyErrorCode.InvalidIdentity,
      path: 'identities[0].id',
    },
    {
      name: 'a CIDR with host bits',
      ir: {
        ...valid,
        identities: [...valid.identities.slice(0, 3), { id: 0x0100_0000, kind: 'cidr', cidr: '10.0.0.1/8' }],
      },
      code: PolicyErrorCode.InvalidPrefix,
      path: 'identities[3].cidr',
    },
    {
      name: 'an ipcache entry for an unknown identity',
      ir: {
        ...valid,
        ipcache: [
          { prefix: '10.0.0.1/32', identity: 300 },
          { prefix: '10.0.0.2/32', identity: 999 },
        ],
      },
      code: PolicyErrorCode.UnknownIdentity,
      path: 'ipcache[1].identity',
    },
    {
      name: 'an ipcache entry naming a CIDR identity',
      ir: { ...valid, ipcache: [...valid.ipcache, { prefix: '10.0.0.2/32', identity: 0x0100_0000 }] },
      code: PolicyErrorCode.InvalidIdentity,
      path: 'ipcache[1].identity',
    },
    {
      name: 'an ipcache prefix twice',
      ir: { ...valid, ipcache: [...valid.ipcache, { prefix: '10.0.0.1/32', identity: 300 }] },
      code: PolicyErrorCode.DuplicatePrefix,
      path: 'ipcache[1].prefix',
    },
    {
      name: 'an endpoint address without its ipcache entry',
      ir: withEndpoint({ addresses: ['10.0.0.9'] }),
      code: PolicyErrorCode.InvalidAddress,
      path: 'endpoints[0].addresses[0]',
    },
    {
      name: 'two endpoints on one interface',
      ir: { ...valid, endpoints: [endpoint(), endpoint({ name: 'x/b' })] },
      code: PolicyErrorCode.DuplicateEndpoint,
      path: 'endpoints[1].interface',
    },
    {
      name: 'an interface name Linux would refuse',
      ir: withEndpoint({ interface: 'a-name-far-too-long' }),
      code: PolicyErrorCode.InvalidInterface,
      path: 'endpoints[0].interface',
    },
    {
      name: 'endPort below port',
      ir: withRules(rule({ ports: [{ protocol: 'TCP', port: 90, endPort: 80 }] })),
      code: PolicyErrorCode.InvalidPort,
      path: 'endpoints[0].ingress.rules[0].ports[0].endPort',
    },
    {
      name: 'peers out of order',
      ir: withRules(rule({ peers: [300, 1] })),
      code: PolicyErrorCode.InvalidPeers,
      path: 'endpoints[0].ingress.rules[0].peers',
    },
    {
      name: 'rules on a direction no policy selects',
      ir: withEndpoint({ egress: { enforced: false, rules: [rule()] } }),
      code: PolicyErrorCode.RulesNotEnforced,
      path: 'endpoints[0].egress.rules',
    },
    {
      name: 'a redirect of UDP',
      ir: withRules(rule({ ports: [{ protocol: 'UDP', port: 53 }], verdict: 'redirect', proxyPort: 15001 })),
      code: PolicyErrorCode.InvalidRedirect,
      path: 'endpoints[0].ingress.rules[0].ports',
    },
    {
      name: 'a redirect without a proxy port',
      ir: withRules(rule({ ports: [{ protocol: 'TCP', port: 80 }], verdict: 'redirect' })),
      code: PolicyErrorCode.InvalidRedirect,
      path: 'endpoints[0].ingress.rules[0].proxyPort',
    },
    {
      name: 'two redirects of the same traffic to different proxies',
      ir: withRules(
        rule({
          ports: [{ protocol: 'TCP', port: 8000, endPort: 8100 }],
          verdict: 'redirect',
          proxyPort: 15001,
        }),
        rule({
          peers: 'any',
          ports: [{ protocol: 'TCP', port: 8080 }],
          verdict: 'redirect',
          proxyPort: 15002,
        }),
      ),
      code: PolicyErrorCode.RedirectConflict,
      path: 'endpoints[0].ingress.rules[1].proxyPort',
    },
  ];

  it.each(cases)('reports $name', ({ ir, code, path }) => {
    const errors = validatePolicy(ir);
    expect(errors, JSON.stringify(errors)).toContainEqual(expect.objectContaining({ code, path }));
  });

  it('has a case for every code', () => {
    expect(new Set(cases.map((c) => c.code))).toEqual(new Set(Object.values(PolicyErrorCode)));
  });
});
