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

/** The same, with the Ingress on the default port (no annotation). */
const NO_ANNOTATION = YAML.replace('  annotations: { ingress.skein.io/http-port: "8080" }\n', '');

async function translate(
  show: string,
  flags: readonly string[] = [],
  yaml = YAML,
): Promise<{ code: number; doc: unknown; stderr: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'skein-ingress-cli-'));
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err.push(String(chunk));
    return true;
  });
  try {
    await writeFile(path.join(dir, 'all.yaml'), yaml);
    const code = await runTranslate(['--config-dir', dir, '--show', show, '-o', 'json', ...flags]);
    return { code, doc: out.length === 0 ? undefined : JSON.parse(out.join('')), stderr: err.join('') };
  } finally {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  }
}

interface Item {
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly status: Record<string, unknown>;
}

function itemsOf(doc: unknown): Item[] {
  return (doc as { items: Item[] }).items;
}

function conditionOf(item: Item | undefined, type: string): Record<string, unknown> | undefined {
  return ((item?.status['conditions'] ?? []) as Record<string, unknown>[]).find((c) => c['type'] === type);
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
    // It listens on 0.0.0.0, which names no host a client could use: no address until one is known.
    expect(ingress?.status['loadBalancer']).toEqual({});
  });

  it('takes the Ingress defaults from flags', async () => {
    const { code, doc } = await translate('status', [
      '--ingress-address',
      '127.0.0.3',
      '--ingress-http-port',
      '8081',
      '--ingress-status-address',
      'ingress.example.net',
    ]);
    expect(code).toBe(0);
    const ingress = itemsOf(doc).find((i) => i.kind === 'Ingress');
    expect(ingress?.status['loadBalancer']).toEqual({ ingress: [{ hostname: 'ingress.example.net' }] });
    // The http-port annotation still wins over the default port; the address is the flag's.
    expect(conditionOf(ingress, 'Programmed')?.['message']).toBe('served at 127.0.0.3:8080 (HTTP)');

    const ir = (await translate('ir', ['--ingress-http-port', '8081'], NO_ANNOTATION)).doc as {
      listeners: { name: string }[];
    };
    expect(ir.listeners.map((l) => l.name)).toEqual(['listener/0.0.0.0/8080', 'listener/0.0.0.0/8081']);

    // Dedicated mode from the flag: of two Ingresses on one socket, the second (by name) is not served.
    const two = `${NO_ANNOTATION}---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: { name: ing2, namespace: default }
spec:
  ingressClassName: skein
  rules:
    - host: other.example.com
      http: { paths: [{ path: /, pathType: Prefix, backend: { service: { name: web, port: { number: 80 } } } }] }
`;
    const shared = await translate('status', ['--ingress-http-port', '8081'], two);
    const second = (d: unknown) => itemsOf(d).find((i) => i.metadata.name === 'ing2');
    expect(conditionOf(second(shared.doc), 'Programmed')).toMatchObject({ status: 'True' });
    const dedicated = await translate(
      'status',
      ['--ingress-mode', 'dedicated', '--ingress-http-port', '8081'],
      two,
    );
    expect(conditionOf(second(dedicated.doc), 'Programmed')).toMatchObject({
      status: 'False',
      reason: 'PortUnavailable',
    });

    // The controller name decides which IngressClasses are ours.
    const other = await translate('status', ['--ingress-controller', 'example.com/other'], NO_ANNOTATION);
    expect(itemsOf(other.doc).map((i) => i.kind)).not.toContain('Ingress');
  });

  it('refuses bad Ingress flag values up front, naming the flag and the value', async () => {
    for (const [flags, message] of [
      [
        ['--ingress-address', 'localhost'],
        'Cannot use --ingress-address "localhost": it must be an IP address',
      ],
      [
        ['--ingress-http-port', '0'],
        'Cannot use --ingress-http-port "0": it must be a port number in 1..65535',
      ],
      [['--ingress-https-port', '70000'], 'Cannot use --ingress-https-port "70000"'],
      [['--ingress-http-port', '443'], 'Cannot use --ingress-https-port 443: it is also the HTTP port'],
      [['--ingress-mode', 'both'], 'Cannot use --ingress-mode "both": it takes shared or dedicated'],
      [['--ingress-status-address', 'not a name'], 'Cannot use --ingress-status-address "not a name"'],
      [['--ingress-controller', 'no-slash'], 'Cannot use --ingress-controller "no-slash"'],
    ] as const) {
      const r = await translate('status', flags);
      expect(r.code, flags.join(' ')).toBe(2);
      expect(r.doc).toBeUndefined();
      expect(r.stderr).toContain(`skein translate: SKEIN_CLI_INVALID_FLAG: ${message}`);
    }
  });

  it('shows on the Ingress a hostname the Gateway takes from it', async () => {
    const yaml = YAML.replace('host: ingress.example.com', 'host: gateway.example.com');
    const { doc, stderr } = await translate('status', [], yaml);
    const ingress = itemsOf(doc).find((i) => i.kind === 'Ingress');
    expect(conditionOf(ingress, 'Conflicted')).toMatchObject({ status: 'True', reason: 'HostnameConflict' });
    expect(conditionOf(ingress, 'Programmed')).toMatchObject({ status: 'False' });
    expect(stderr).toMatch(/SKEIN_MERGE_CONFLICT.*Ingress\/default\/ing.*spec\.rules\[0\]\.host/);
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
