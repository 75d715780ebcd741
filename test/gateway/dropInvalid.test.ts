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
});
