import { describe, expect, it } from 'vitest';
import { dropInvalid } from '../../src/gateway/dropInvalid.js';
import type { Ir } from '../../src/model/ir.js';

describe('dropInvalid', () => {
  it('passes valid IR through untouched', () => {
    const ir: Ir = { listeners: [], backends: [], secrets: [] };
    expect(dropInvalid(ir)).toEqual({ ir, diagnostics: [] });
  });

  it('reports a translator bug and drops only the offending route', () => {
    const ir: Ir = {
      listeners: [
        {
          name: 'listener/0.0.0.0/80',
          address: '0.0.0.0',
          port: 80,
          protocol: 'HTTP',
          virtualHosts: [
            {
              name: 'listener/0.0.0.0/80/*',
              hostnames: ['*'],
              routes: [
                {
                  name: 'bad',
                  match: { path: { kind: 'PathPrefix', value: '/' } },
                  action: { kind: 'forward', backends: [{ backend: 'ghost', weight: 1 }] },
                },
                {
                  name: 'good',
                  match: { path: { kind: 'Exact', value: '/x' } },
                  action: { kind: 'directResponse', status: 500 },
                },
              ],
            },
          ],
        },
      ],
      backends: [],
      secrets: [],
    };
    const { ir: out, diagnostics } = dropInvalid(ir);
    expect(out.listeners[0]?.virtualHosts[0]?.routes.map((r) => r.name)).toEqual(['good']);
    expect(diagnostics).toEqual([
      expect.objectContaining({
        code: 'SKEIN_GATEWAY_INTERNAL',
        severity: 'error',
        object: 'bad',
        field: 'listeners[0].virtualHosts[0].routes[0].action.backends[0].backend',
      }),
    ]);
  });

  it('drops only the offending L4 route of a TLS listener, keeping the listener and its other routes', () => {
    const ir: Ir = {
      listeners: [
        {
          name: 'listener/0.0.0.0/443',
          address: '0.0.0.0',
          port: 443,
          protocol: 'TLS',
          virtualHosts: [],
          tls: { mode: 'Passthrough', certificates: [] },
          l4Routes: [
            {
              name: 'tlsroute/default/bad/rule/0',
              hostnames: ['a.example.com'],
              backends: [{ backend: 'ghost', weight: 1 }],
            },
            {
              name: 'tlsroute/default/good/rule/0',
              hostnames: ['b.example.com'],
              backends: [{ backend: 'default/s/443/tcp', weight: 1 }],
            },
          ],
        },
      ],
      backends: [{ name: 'default/s/443/tcp', protocol: 'tcp', endpoints: [] }],
      secrets: [],
    };
    const { ir: out, diagnostics } = dropInvalid(ir);
    expect(out.listeners.map((l) => l.l4Routes?.map((r) => r.name))).toEqual([
      ['tlsroute/default/good/rule/0'],
    ]);
    expect(diagnostics).toEqual([
      expect.objectContaining({
        object: 'tlsroute/default/bad/rule/0',
        field: 'listeners[0].l4Routes[0].backends[0].backend',
      }),
    ]);
  });
});
