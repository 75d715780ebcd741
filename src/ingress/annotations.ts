import { isIP } from 'node:net';
import { durationMs } from '../gateway/routeRules.js';
import type { Ingress } from '../sources/objects.js';
import { IngressCode, type IngressProblem } from './codes.js';

/** Every annotation Skein reads on an Ingress; docs/ingress.md documents each. */
export const Annotation = {
  /** `shared` (default from configuration) or `dedicated`. */
  loadBalancerMode: 'ingress.skein.io/loadbalancer-mode',
  /** `true`: plain HTTP requests for hosts served over TLS get a 308 redirect to HTTPS. */
  forceHttps: 'ingress.skein.io/force-https',
  /** A duration (`30s`, `1m30s`, `500ms`, or plain seconds `30`) for the whole request; `0` disables. */
  requestTimeout: 'ingress.skein.io/request-timeout',
  /** `http` (default: what the Service port's appProtocol says), `h2c` or `grpc` (both cleartext HTTP/2). */
  backendProtocol: 'ingress.skein.io/backend-protocol',
  /** The IP address the Ingress's listeners bind (loopback included). */
  address: 'ingress.skein.io/address',
  httpPort: 'ingress.skein.io/http-port',
  httpsPort: 'ingress.skein.io/https-port',
} as const;

const PREFIX = 'ingress.skein.io/';
const KNOWN: ReadonlySet<string> = new Set(Object.values(Annotation));

export type LoadBalancerMode = 'shared' | 'dedicated';

/** What configuration says when an Ingress does not (see IngressTranslateOptions). */
export interface IngressDefaults {
  readonly defaultAddress: string;
  readonly httpPort: number;
  readonly httpsPort: number;
  readonly defaultLoadBalancerMode: LoadBalancerMode;
}

/** An Ingress's settings: its annotations where they are valid, else the defaults. */
export interface IngressSettings {
  readonly mode: LoadBalancerMode;
  readonly forceHttps: boolean;
  readonly requestTimeoutMs: number | undefined;
  readonly backendProtocol: 'http' | 'h2c';
  readonly address: string;
  /** Whether `address` came from the annotation (then it is also the status address). */
  readonly addressAnnotated: boolean;
  readonly httpPort: number;
  readonly httpsPort: number;
}

/**
 * The annotations of one Ingress, checked. An invalid value is reported (PartiallyInvalid, naming the
 * annotation and the value) and the default used instead, so the rest of the Ingress keeps serving. An
 * unknown `ingress.skein.io/` annotation is reported too: it is most likely a typo.
 */
export function readSettings(
  ingress: Ingress,
  defaults: IngressDefaults,
): { settings: IngressSettings; problems: IngressProblem[] } {
  const annotations = ingress.metadata?.annotations ?? {};
  const problems: IngressProblem[] = [];
  const invalid = (key: string, value: string, expected: string, fallback: string): void => {
    problems.push({
      code: IngressCode.InvalidAnnotation,
      condition: 'PartiallyInvalid',
      reason: 'UnsupportedValue',
      field: `metadata.annotations[${key}]`,
      message: `annotation ${key}: "${value}" is not ${expected}; using ${fallback}`,
    });
  };
  for (const key of Object.keys(annotations).sort()) {
    if (key.startsWith(PREFIX) && !KNOWN.has(key)) {
      problems.push({
        code: IngressCode.InvalidAnnotation,
        condition: 'PartiallyInvalid',
        reason: 'UnsupportedValue',
        field: `metadata.annotations[${key}]`,
        message: `annotation ${key} is not one Skein reads (known: ${[...KNOWN].sort().join(', ')}); ignored`,
      });
    }
  }
  const get = (key: string): string | undefined => {
    const v = annotations[key];
    return v === undefined ? undefined : v.trim();
  };

  let mode = defaults.defaultLoadBalancerMode;
  const rawMode = get(Annotation.loadBalancerMode);
  if (rawMode !== undefined) {
    if (rawMode === 'shared' || rawMode === 'dedicated') mode = rawMode;
    else invalid(Annotation.loadBalancerMode, rawMode, '"shared" or "dedicated"', `"${mode}"`);
  }

  let forceHttps = false;
  const rawForce = get(Annotation.forceHttps);
  if (rawForce !== undefined) {
    if (rawForce === 'true' || rawForce === 'false') forceHttps = rawForce === 'true';
    else invalid(Annotation.forceHttps, rawForce, '"true" or "false"', '"false"');
  }

  let requestTimeoutMs: number | undefined;
  const rawTimeout = get(Annotation.requestTimeout);
  if (rawTimeout !== undefined) {
    requestTimeoutMs = /^[0-9]{1,6}$/.test(rawTimeout) ? Number(rawTimeout) * 1000 : durationMs(rawTimeout);
    if (requestTimeoutMs === undefined) {
      invalid(
        Annotation.requestTimeout,
        rawTimeout,
        'a duration like "30s", "1m30s", "500ms" or a number of seconds',
        "Envoy's default (15s)",
      );
    }
  }

  let backendProtocol: 'http' | 'h2c' = 'http';
  const rawProtocol = get(Annotation.backendProtocol);
  if (rawProtocol !== undefined) {
    const p = rawProtocol.toLowerCase();
    if (p === 'http' || p === 'h2c' || p === 'grpc') backendProtocol = p === 'http' ? 'http' : 'h2c';
    else invalid(Annotation.backendProtocol, rawProtocol, '"http", "h2c" or "grpc"', '"http"');
  }

  let address = defaults.defaultAddress;
  let addressAnnotated = false;
  const rawAddress = get(Annotation.address);
  if (rawAddress !== undefined) {
    if (isIP(rawAddress) !== 0) {
      address = rawAddress;
      addressAnnotated = true;
    } else {
      invalid(Annotation.address, rawAddress, 'an IP address', address);
    }
  }

  const port = (key: string, fallback: number): number => {
    const raw = get(key);
    if (raw === undefined) return fallback;
    const n = /^[0-9]{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
    if (n >= 1 && n <= 65535) return n;
    invalid(key, raw, 'a port in 1..65535', String(fallback));
    return fallback;
  };
  let httpPort = port(Annotation.httpPort, defaults.httpPort);
  let httpsPort = port(Annotation.httpsPort, defaults.httpsPort);
  if (httpPort === httpsPort) {
    // One socket cannot be both: the Ingress falls back to the configured pair (which differ).
    const key = get(Annotation.httpsPort) !== undefined ? Annotation.httpsPort : Annotation.httpPort;
    problems.push({
      code: IngressCode.InvalidAnnotation,
      condition: 'PartiallyInvalid',
      reason: 'UnsupportedValue',
      field: `metadata.annotations[${key}]`,
      message: `annotations ${Annotation.httpPort} and ${Annotation.httpsPort} give one port, ${httpPort}, for HTTP and HTTPS; using ${defaults.httpPort} and ${defaults.httpsPort}`,
    });
    httpPort = defaults.httpPort;
    httpsPort = defaults.httpsPort;
  }

  return {
    settings: {
      mode,
      forceHttps,
      requestTimeoutMs,
      backendProtocol,
      address,
      addressAnnotated,
      httpPort,
      httpsPort,
    },
    problems,
  };
}
