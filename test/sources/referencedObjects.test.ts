import { describe, expect, it } from 'vitest';
import { referencedObjects } from '../../src/sources/kubernetes/referencedObjects.js';
import { emptyObjectSet, type ObjectSet } from '../../src/sources/objects.js';

// Which Secrets and ConfigMaps the agent reads by name (test/kube/agent.test.ts shows the watches on a
// real API server: the named Secret is read, another one in the same namespace is not).

const objects: ObjectSet = {
  ...emptyObjectSet,
  gatewayClasses: [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'ours' },
      spec: { controllerName: 'skein.io/gateway-controller' },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'GatewayClass',
      metadata: { name: 'theirs' },
      spec: { controllerName: 'example.com/other' },
    },
  ],
  gateways: [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'a', namespace: 'apps' },
      spec: {
        gatewayClassName: 'ours',
        listeners: [
          {
            name: 'https',
            protocol: 'HTTPS',
            port: 443,
            tls: {
              certificateRefs: [
                { name: 'local' },
                { name: 'shared', namespace: 'certs' },
                { name: 'not-a-secret', kind: 'ConfigMap', group: '' },
              ],
            },
          },
        ],
      },
    },
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'Gateway',
      metadata: { name: 'b', namespace: 'apps' },
      spec: {
        gatewayClassName: 'theirs',
        listeners: [
          { name: 'https', protocol: 'HTTPS', port: 443, tls: { certificateRefs: [{ name: 'their-cert' }] } },
        ],
      },
    },
  ],
  ingressClasses: [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'IngressClass',
      metadata: { name: 'skein' },
      spec: { controller: 'skein.io/ingress-controller' },
    },
  ],
  ingresses: [
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'i', namespace: 'web' },
      spec: { ingressClassName: 'skein', tls: [{ secretName: 'web-tls' }] },
    },
    {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: { name: 'j', namespace: 'web' },
      spec: { ingressClassName: 'nginx', tls: [{ secretName: 'nginx-tls' }] },
    },
  ],
  backendTLSPolicies: [
    {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'BackendTLSPolicy',
      metadata: { name: 'p', namespace: 'apps' },
      spec: {
        targetRefs: [{ group: '', kind: 'Service', name: 'svc' }],
        validation: {
          hostname: 'svc.apps',
          caCertificateRefs: [{ group: '', kind: 'ConfigMap', name: 'ca' }],
        },
      },
    },
  ],
};

describe('referencedObjects', () => {
  it('names the Secrets of Skein’s Gateways and Ingresses and the ConfigMaps of BackendTLSPolicies, nothing else', () => {
    const refs = referencedObjects(objects);
    expect([...refs.secrets].sort()).toEqual(['apps/local', 'certs/shared', 'web/web-tls']);
    expect([...refs.configMaps]).toEqual(['apps/ca']);
  });

  it('follows a configured Ingress controller name', () => {
    const refs = referencedObjects(
      {
        ...objects,
        ingressClasses: [
          {
            apiVersion: 'networking.k8s.io/v1',
            kind: 'IngressClass',
            metadata: { name: 'nginx' },
            spec: { controller: 'example.com/mine' },
          },
        ],
      },
      { ingress: 'example.com/mine' },
    );
    expect([...refs.secrets].sort()).toEqual(['apps/local', 'certs/shared', 'web/nginx-tls']);
  });
});
