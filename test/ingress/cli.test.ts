import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runTranslate } from '../../src/cli/translate.js';

/** `skein translate` on a directory with both an Ingress and an HTTPRoute: one IR, both statuses. */

const YAML = `
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: { name: skein }
spec: { controller: skein.io/ingress-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: skein }
spec: { controllerName: skein.io/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: gw, namespace: default }
spec:
  gatewayClassName: skein
  listeners: [{ name: http, protocol: HTTP, port: 8080, hostname: gateway.example.com }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: route, namespace: default }
spec:
  parentRefs: [{ name: gw }]
  rules: [{ backendRefs: [{ name: web, port: 80 }] }]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ing
  namespace: default
  annotations: { ingress.skein.io/http-port: "8080" }
spec:
  ingressClassName: skein
  rules:
    - host: ingress.example.com
      http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }] }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec: { ports: [{ name: http, port: 80 }] }
`;

async function translate(show: string): Promise<{ code: number; doc: unknown }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-ingress-cli-'));
  const out: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await writeFile(path.join(dir, 'all.yaml'), YAML);
    const code = await runTranslate(['--config-dir', dir, '--show', show, '-o', 'json']);
    return { code, doc: JSON.parse(out.join('')) };
  } finally {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('skein translate with Ingresses', () => {
  it('prints the Ingress with its status next to the Gateway API objects', async () => {
    const { code, doc } = await translate('status');
    expect(code).toBe(0);
    const items = (doc as { items: { kind: string; status: Record<string, unknown> }[] }).items;
    expect(items.map((i) => i.kind)).toEqual(['GatewayClass', 'Gateway', 'HTTPRoute', 'Ingress']);
    const ingress = items.find((i) => i.kind === 'Ingress');
    expect(ingress?.status['loadBalancer']).toEqual({ ingress: [{ ip: '0.0.0.0' }] });
  });

  it('prints one IR in which both share the socket', async () => {
    const { doc } = await translate('ir');
    const ir = doc as { listeners: { name: string; virtualHosts: { name: string }[] }[] };
    expect(ir.listeners.map((l) => l.name)).toEqual(['listener/0.0.0.0/8080']);
    expect(ir.listeners[0]?.virtualHosts.map((v) => v.name)).toEqual([
      'listener/0.0.0.0/8080/gateway.example.com',
      'listener/0.0.0.0/8080/ingress.example.com',
    ]);
  });
});
