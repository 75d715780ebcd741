import { isIP } from 'node:net';
import type { LoadBalancerMode } from '../ingress/annotations.js';
import type { IngressConfig } from '../ingress/translate.js';
import { validHostname, validPort } from '../model/validate.js';

/** A flag with a value the command cannot use: exit 2, before anything starts. */
export const INVALID_FLAG = 'SKEIN_CLI_INVALID_FLAG';

/** A flag value the command cannot use, as one line for stderr. */
export class FlagError extends Error {
  readonly code = INVALID_FLAG;
}

/** `value` as a port number; 0 (pick a free one) only where `allowZero`. */
export function portFlag(flag: string, value: string, allowZero: boolean): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(validPort(n) || (allowZero && n === 0))) {
    throw new FlagError(
      `Cannot use ${flag} "${value}": it must be a port number in ${allowZero ? '0' : '1'}..65535`,
    );
  }
  return n;
}

/** The parseArgs options of the Ingress flags `skein up` and `skein translate` share. */
export const INGRESS_FLAGS = {
  'ingress-controller': { type: 'string' },
  'ingress-address': { type: 'string' },
  'ingress-http-port': { type: 'string' },
  'ingress-https-port': { type: 'string' },
  'ingress-mode': { type: 'string' },
  'ingress-status-address': { type: 'string' },
} as const;

export const INGRESS_FLAGS_HELP = `Ingress defaults (what an Ingress gets when its ingress.skein.io/* annotations do not say; docs/ingress.md):
  --ingress-controller NAME      IngressClass spec.controller that is Skein's (default: skein.io/ingress-controller)
  --ingress-address IP           listen address (default: 0.0.0.0)
  --ingress-http-port N          HTTP port (default: 80)
  --ingress-https-port N         HTTPS port, for Ingresses with spec.tls (default: 443)
  --ingress-mode shared|dedicated  load balancer mode (default: shared)
  --ingress-status-address ADDR  IP or DNS name reported in status.loadBalancer.ingress (default: the
                                 Ingress's listen address when it is a specific one; none for 0.0.0.0)
`;

type IngressFlagValues = { readonly [K in keyof typeof INGRESS_FLAGS]?: string | undefined };

/**
 * The IngressConfig the flags give, checked up front so that a bad value is a clear message naming the
 * flag rather than a failed build. Only the flags given are set; the translator has the defaults.
 */
export function ingressConfigFromFlags(values: IngressFlagValues): IngressConfig {
  const config: {
    -readonly [K in keyof IngressConfig]: IngressConfig[K];
  } = {};
  const controller = values['ingress-controller'];
  if (controller !== undefined) {
    // IngressClass.spec.controller: a domain-prefixed path, as the API server checks it.
    const [domain, ...rest] = controller.split('/');
    if (controller.length > 250 || domain === undefined || !validHostname(domain) || rest.join('/') === '') {
      throw new FlagError(
        `Cannot use --ingress-controller "${controller}": it must be a domain-prefixed path such as skein.io/ingress-controller`,
      );
    }
    config.controllerName = controller;
  }
  const address = values['ingress-address'];
  if (address !== undefined) {
    if (isIP(address) === 0) {
      throw new FlagError(
        `Cannot use --ingress-address "${address}": it must be an IP address (e.g. 127.0.0.1, 0.0.0.0, ::1), not a name`,
      );
    }
    config.defaultAddress = address;
  }
  const http = values['ingress-http-port'];
  if (http !== undefined) config.httpPort = portFlag('--ingress-http-port', http, false);
  const https = values['ingress-https-port'];
  if (https !== undefined) config.httpsPort = portFlag('--ingress-https-port', https, false);
  if ((config.httpPort ?? 80) === (config.httpsPort ?? 443)) {
    throw new FlagError(
      `Cannot use --ingress-https-port ${config.httpsPort ?? 443}: it is also the HTTP port (--ingress-http-port ${config.httpPort ?? 80}); one socket serves one protocol`,
    );
  }
  const mode = values['ingress-mode'];
  if (mode !== undefined) {
    if (mode !== 'shared' && mode !== 'dedicated') {
      throw new FlagError(`Cannot use --ingress-mode "${mode}": it takes shared or dedicated`);
    }
    config.defaultLoadBalancerMode = mode satisfies LoadBalancerMode;
  }
  const statusAddress = values['ingress-status-address'];
  if (statusAddress !== undefined) {
    if (isIP(statusAddress) === 0 && !(validHostname(statusAddress) && !statusAddress.includes('*'))) {
      throw new FlagError(
        `Cannot use --ingress-status-address "${statusAddress}": it must be an IP address or a DNS name`,
      );
    }
    config.statusAddress = statusAddress;
  }
  return config;
}
