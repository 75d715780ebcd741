import { isIP } from 'node:net';
import { z } from 'zod';
import type { KnownKind } from '../objects.js';

/**
 * Schemas for the kinds Skein reads, mirroring what the API server checks before it stores an object:
 * the CRD's OpenAPI schema (types, required fields, patterns, enums, ranges, list sizes) and the CEL
 * rules of the Gateway API CRDs, plus the built-in validation of the core and networking kinds (Service,
 * EndpointSlice, Secret, ConfigMap, Namespace, Ingress, IngressClass, NetworkPolicy, Pod).
 *
 * Only what the API server itself would reject belongs here. Values the schema allows but Skein cannot
 * serve (an HTTPS listener, a RequestMirror filter) pass, and the translator reports them as status
 * conditions, exactly as it would for objects read from a cluster.
 *
 * Schemas use `z.object`, which drops fields it does not know from its output; the loader compares input
 * and output to warn about such fields (often typos) instead of silently ignoring them.
 */

// --- Formats (Kubernetes and Gateway API string types) ---

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const CONTROLLER =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/;
const PROTOCOL =
  /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$/;
const ADDRESS_TYPE =
  /^Hostname|IPAddress|NamedAddress|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
/** The characters the HTTPRoute CRD allows in Exact and PathPrefix paths. */
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function pattern(re: RegExp, what: string, max: number, min = 1): z.ZodString {
  return z
    .string()
    .min(min, { error: `must not be empty` })
    .max(max, { error: `must be at most ${max} characters` })
    .regex(re, { error: `must be ${what}` });
}

const subdomain = pattern(SUBDOMAIN, "a DNS subdomain (lower case letters, digits, '-' and '.')", 253);
const dnsLabel = pattern(LABEL, "a DNS label (lower case letters, digits and '-')", 63);
const hostname = pattern(
  HOSTNAME,
  "a hostname, optionally with a leading '*.' (no IP addresses, no port)",
  253,
);
const sectionName = pattern(SUBDOMAIN, "a section name (lower case letters, digits, '-' and '.')", 253);
const objectName = z.string().min(1, { error: 'must not be empty' }).max(253);
const kind = pattern(KIND, 'a Kind (letters, digits and -, starting with a letter)', 63);
const group = pattern(GROUP, 'empty (the core group) or a DNS subdomain', 253, 0);
const namespace = dnsLabel;
const portNumber = z
  .number({ error: 'must be an integer' })
  .int({ error: 'must be an integer' })
  .min(1, { error: 'must be a port in 1..65535' })
  .max(65535, { error: 'must be a port in 1..65535' });
const headerName = pattern(HEADER_NAME, 'an HTTP header name (token characters only)', 256);
const duration = z.string().regex(DURATION, { error: "must be a duration like '10s', '1m30s' or '500ms'" });
const timestamp = z
  .string()
  .regex(RFC3339, { error: "must be an RFC 3339 time like '2024-01-02T03:04:05Z'" });

function enumOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of ${values.join(', ')}` });
}

const labelMap = z
  .record(z.string(), z.string({ error: 'label values must be strings' }))
  .superRefine((labels, ctx) => {
    for (const [key, value] of Object.entries(labels)) {
      if (!validLabelKey(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'must be a label key: an optional DNS prefix and "/", then a name of up to 63 characters',
        });
      }
      if (value.length > 63 || !LABEL_VALUE.test(value)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'must be a label value: at most 63 letters, digits, "-", "_" or "."',
        });
      }
    }
  });

function validLabelKey(key: string): boolean {
  const slash = key.indexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length > 253 || !SUBDOMAIN.test(prefix))) return false;
  return name.length <= 63 && LABEL_NAME.test(name);
}

const labelSelector = z.object({
  matchLabels: labelMap.optional(),
  matchExpressions: z
    .array(
      z.object({
        key: z.string().min(1),
        operator: z.string().min(1),
        values: z.array(z.string()).optional(),
      }),
    )
    .optional(),
});

function metadata(name: z.ZodString) {
  // Loose: metadata carries many fields (uid, resourceVersion, managedFields, ...) that are not ours to judge.
  return z.looseObject({
    name,
    namespace: namespace.optional(),
    labels: labelMap.optional(),
    annotations: z.record(z.string(), z.string({ error: 'annotation values must be strings' })).optional(),
    generation: z.number().int().min(0).optional(),
    creationTimestamp: timestamp.optional(),
  });
}

// --- GatewayClass ---

const gatewayClassSpec = z.object({
  controllerName: pattern(CONTROLLER, "a domain-prefixed path like 'example.com/gateway-controller'", 253),
  parametersRef: z.object({ group, kind, name: objectName, namespace: namespace.optional() }).optional(),
  description: z.string().max(64, { error: 'must be at most 64 characters' }).optional(),
});

// --- Gateway ---

const secretObjectReference = z.object({
  group: group.optional(),
  kind: kind.optional(),
  name: objectName,
  namespace: namespace.optional(),
});

const listener = z.object({
  name: sectionName,
  hostname: hostname.optional(),
  port: portNumber,
  protocol: pattern(PROTOCOL, "a protocol like 'HTTP', 'HTTPS' or 'example.com/proto'", 255),
  tls: z
    .object({
      mode: enumOf(['Terminate', 'Passthrough']).optional(),
      certificateRefs: z.array(secretObjectReference).max(64).optional(),
      options: z.record(z.string(), z.string()).optional(),
      frontendValidation: z.unknown().optional(),
    })
    .optional(),
  allowedRoutes: z
    .object({
      namespaces: z
        .object({ from: enumOf(['All', 'Selector', 'Same']).optional(), selector: labelSelector.optional() })
        .optional(),
      kinds: z
        .array(z.object({ group: group.optional(), kind }))
        .max(8)
        .optional(),
    })
    .optional(),
});

const gatewayAddress = z.object({
  type: pattern(
    ADDRESS_TYPE,
    "'IPAddress', 'Hostname', 'NamedAddress' or a domain-prefixed type",
    253,
  ).optional(),
  value: z.string().min(1).max(253).optional(),
});

const gatewaySpec = z
  .object({
    gatewayClassName: objectName,
    listeners: z.array(listener).min(1, { error: 'must list at least one listener' }).max(64),
    addresses: z.array(gatewayAddress).max(16).optional(),
    infrastructure: z
      .object({
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
        parametersRef: z.object({ group, kind, name: objectName }).optional(),
      })
      .optional(),
    allowedListeners: z.unknown().optional(),
    tls: z.unknown().optional(),
    defaultScope: z.unknown().optional(),
  })
  .superRefine((spec, ctx) => {
    // The CEL rules of the Gateway CRD.
    const names = new Set<string>();
    const combos = new Set<string>();
    spec.listeners.forEach((l, i) => {
      const at = ['listeners', i];
      if (['HTTP', 'TCP', 'UDP'].includes(l.protocol) && l.tls !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'tls'],
          message: `must not be set for protocol ${l.protocol}`,
        });
      }
      if (['HTTPS', 'TLS'].includes(l.protocol) && l.tls === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'tls'],
          message: `is required for protocol ${l.protocol}`,
        });
      }
      if (l.protocol === 'HTTPS' && l.tls?.mode !== undefined && l.tls.mode !== 'Terminate') {
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'tls', 'mode'],
          message: 'must be Terminate for protocol HTTPS',
        });
      }
      if (['TCP', 'UDP'].includes(l.protocol) && l.hostname !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'hostname'],
          message: `must not be set for protocol ${l.protocol}`,
        });
      }
      if (names.has(l.name)) {
        ctx.addIssue({
          code: 'custom',
          path: [...at, 'name'],
          message: `listener name "${l.name}" is used twice`,
        });
      }
      names.add(l.name);
      const combo = `${l.port}/${l.protocol}/${l.hostname ?? ''}`;
      if (combos.has(combo)) {
        ctx.addIssue({
          code: 'custom',
          path: at,
          message: 'the combination of port, protocol and hostname must be unique for each listener',
        });
      }
      combos.add(combo);
    });
    const seen = new Set<string>();
    spec.addresses?.forEach((a, i) => {
      const type = a.type ?? 'IPAddress';
      if (a.value === undefined) return;
      if (type === 'IPAddress' && isIP(a.value) === 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['addresses', i, 'value'],
          message: 'must be an IP address when type is IPAddress',
        });
      }
      if (type === 'Hostname' && !HOSTNAME.test(a.value)) {
        ctx.addIssue({
          code: 'custom',
          path: ['addresses', i, 'value'],
          message: 'must be a hostname when type is Hostname',
        });
      }
      if ((type === 'IPAddress' || type === 'Hostname') && seen.has(`${type}/${a.value}`)) {
        ctx.addIssue({
          code: 'custom',
          path: ['addresses', i, 'value'],
          message: `${type} values must be unique`,
        });
      }
      seen.add(`${type}/${a.value}`);
    });
  });

// --- HTTPRoute ---

const parentReference = z.object({
  group: group.optional(),
  kind: kind.optional(),
  namespace: namespace.optional(),
  name: objectName,
  sectionName: sectionName.optional(),
  port: portNumber.optional(),
});

const pathMatch = z
  .object({
    type: enumOf(['Exact', 'PathPrefix', 'RegularExpression']).optional(),
    value: z.string().max(1024, { error: 'must be at most 1024 characters' }).optional(),
  })
  .superRefine((p, ctx) => {
    const type = p.type ?? 'PathPrefix';
    const value = p.value ?? '/';
    if (type === 'RegularExpression') return;
    const problem = pathProblem(value);
    if (problem !== undefined)
      ctx.addIssue({ code: 'custom', path: ['value'], message: `${problem} (type ${type})` });
  });

/** The CRD's CEL rules for Exact and PathPrefix values, in the order it checks them. */
function pathProblem(value: string): string | undefined {
  if (!value.startsWith('/')) return "must be an absolute path starting with '/'";
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
    if (value.includes(bad)) return `must not contain '${bad}'`;
  }
  if (value.endsWith('/..')) return "must not end with '/..'";
  if (value.endsWith('/.')) return "must not end with '/.'";
  if (!PATH_CHARS.test(value)) return 'must only contain URL path characters or %-escapes';
  return undefined;
}

const headerMatch = z.object({
  type: enumOf(['Exact', 'RegularExpression']).optional(),
  name: headerName,
  value: z.string().min(1, { error: 'must not be empty' }).max(4096),
});

const queryParamMatch = z.object({
  type: enumOf(['Exact', 'RegularExpression']).optional(),
  name: headerName,
  value: z.string().min(1, { error: 'must not be empty' }).max(1024),
});

const routeMatch = z
  .object({
    path: pathMatch.optional(),
    headers: z.array(headerMatch).max(16).optional(),
    queryParams: z.array(queryParamMatch).max(16).optional(),
    method: enumOf([
      'GET',
      'HEAD',
      'POST',
      'PUT',
      'DELETE',
      'CONNECT',
      'OPTIONS',
      'TRACE',
      'PATCH',
    ]).optional(),
  })
  .superRefine((m, ctx) => {
    // headers and queryParams are list-maps keyed by name: the API server rejects a repeated name.
    uniqueBy(m.headers, (h) => h.name, 'headers', 'name', ctx);
    uniqueBy(m.queryParams, (q) => q.name, 'queryParams', 'name', ctx);
  });

const headerFilter = z
  .object({
    set: z
      .array(z.object({ name: headerName, value: z.string().max(4096) }))
      .max(16)
      .optional(),
    add: z
      .array(z.object({ name: headerName, value: z.string().max(4096) }))
      .max(16)
      .optional(),
    remove: z.array(headerName).max(16).optional(),
  })
  .superRefine((f, ctx) => {
    uniqueBy(f.set, (h) => h.name, 'set', 'name', ctx);
    uniqueBy(f.add, (h) => h.name, 'add', 'name', ctx);
    uniqueBy(f.remove, (h) => h, 'remove', undefined, ctx);
  });

const filterTypes = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
  'ExtensionRef',
  'CORS',
  'ExternalAuth',
] as const;

/** Filter type → the field that must hold its configuration (and must be absent for other types). */
const filterFields: Record<(typeof filterTypes)[number], string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
};

const routeFilter = z
  .object({
    type: enumOf(filterTypes),
    requestHeaderModifier: headerFilter.optional(),
    responseHeaderModifier: headerFilter.optional(),
    // Filters Skein does not implement yet are checked only for shape; the translator reports them.
    requestMirror: z.looseObject({}).optional(),
    requestRedirect: z.looseObject({}).optional(),
    urlRewrite: z.looseObject({}).optional(),
    extensionRef: z.object({ group, kind, name: objectName }).optional(),
    cors: z.looseObject({}).optional(),
    externalAuth: z.looseObject({}).optional(),
  })
  .superRefine((f, ctx) => checkFilterFields(f, filterFields, ctx));

/** The CEL rules of a filter: the field of its type is set, and no other type's field is. */
function checkFilterFields(
  f: { type: string },
  fields: Readonly<Record<string, string>>,
  ctx: z.RefinementCtx,
): void {
  for (const [type, field] of Object.entries(fields)) {
    const present = (f as Record<string, unknown>)[field] !== undefined;
    if (f.type === type && !present) {
      ctx.addIssue({ code: 'custom', path: [field], message: `is required for filter type ${type}` });
    }
    if (f.type !== type && present) {
      ctx.addIssue({
        code: 'custom',
        path: [field],
        message: `must not be set when the filter type is ${f.type}`,
      });
    }
  }
}

const backendRefFields = {
  group: group.optional(),
  kind: kind.optional(),
  name: objectName,
  namespace: namespace.optional(),
  port: portNumber.optional(),
  weight: z
    .number()
    .int({ error: 'must be an integer' })
    .min(0, { error: 'must be in 0..1000000' })
    .max(1_000_000, { error: 'must be in 0..1000000' })
    .optional(),
};

/** The CEL rule of every BackendRef: a reference to a core Service names its port. */
function checkBackendPort(
  b: { group?: string | undefined; kind?: string | undefined; port?: number | undefined },
  ctx: z.RefinementCtx,
): void {
  if ((b.group ?? '') === '' && (b.kind ?? 'Service') === 'Service' && b.port === undefined) {
    ctx.addIssue({ code: 'custom', path: ['port'], message: 'is required for a Service reference' });
  }
}

const backendRef = z
  .object({ ...backendRefFields, filters: z.array(routeFilter).max(16).optional() })
  .superRefine(checkBackendPort);

/** A plain BackendRef, without filters (TCPRoute, TLSRoute, UDPRoute). */
const plainBackendRef = z.object(backendRefFields).superRefine(checkBackendPort);

const routeRule = z
  .object({
    name: sectionName.optional(),
    matches: z.array(routeMatch).max(64).optional(),
    filters: z.array(routeFilter).max(16).optional(),
    backendRefs: z.array(backendRef).max(16).optional(),
    timeouts: z.object({ request: duration.optional(), backendRequest: duration.optional() }).optional(),
    retry: z.unknown().optional(),
    sessionPersistence: z.unknown().optional(),
  })
  .superRefine((rule, ctx) => {
    const filters = rule.filters ?? [];
    for (const once of ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite']) {
      if (filters.filter((f) => f.type === once).length > 1) {
        ctx.addIssue({ code: 'custom', path: ['filters'], message: `${once} filter cannot be repeated` });
      }
    }
    const has = (t: string): boolean => filters.some((f) => f.type === t);
    if (has('RequestRedirect') && has('URLRewrite')) {
      ctx.addIssue({
        code: 'custom',
        path: ['filters'],
        message: 'may specify either RequestRedirect or URLRewrite, not both',
      });
    }
    if (has('RequestRedirect') && (rule.backendRefs?.length ?? 0) > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['backendRefs'],
        message: 'must be empty when the rule has a RequestRedirect filter',
      });
    }
    const request = rule.timeouts?.request;
    const backend = rule.timeouts?.backendRequest;
    if (request !== undefined && backend !== undefined) {
      const r = durationMs(request);
      const b = durationMs(backend);
      if (r !== 0 && b > r) {
        ctx.addIssue({
          code: 'custom',
          path: ['timeouts', 'backendRequest'],
          message: 'must not be longer than timeouts.request',
        });
      }
    }
  });

const httpRouteSpec = z
  .object({
    parentRefs: z.array(parentReference).max(32).optional(),
    hostnames: z.array(hostname).max(16).optional(),
    rules: z.array(routeRule).max(16).optional(),
    useDefaultGateways: z.unknown().optional(),
  })
  .superRefine((spec, ctx) => {
    checkParentRefs(spec.parentRefs, ctx);
    const rules = spec.rules ?? [];
    const matches = rules.reduce((n, r) => n + (r.matches?.length ?? 1), 0);
    if (matches > 128) {
      ctx.addIssue({
        code: 'custom',
        path: ['rules'],
        message: `the total number of matches across all rules must be at most 128 (is ${matches})`,
      });
    }
    uniqueBy(rules, (r) => r.name, 'rules', 'name', ctx);
  });

/** The CEL rules of every route's parentRefs (CommonRouteSpec). */
function checkParentRefs(
  refs: readonly z.infer<typeof parentReference>[] | undefined,
  ctx: z.RefinementCtx,
): void {
  const list = refs ?? [];
  // Two refs to the same parent must be told apart by sectionName or port, and not repeat it.
  list.forEach((a, i) => {
    list.forEach((b, j) => {
      if (j <= i || !sameParent(a, b)) return;
      if (
        a.sectionName === undefined &&
        a.port === undefined &&
        b.sectionName === undefined &&
        b.port === undefined
      ) {
        ctx.addIssue({
          code: 'custom',
          path: ['parentRefs', j],
          message:
            'sectionName or port must be specified when parentRefs includes 2 or more references to the same parent',
        });
      } else if (a.sectionName === b.sectionName && a.port === b.port) {
        ctx.addIssue({
          code: 'custom',
          path: ['parentRefs', j],
          message:
            'sectionName or port must be unique when parentRefs includes 2 or more references to the same parent',
        });
      }
    });
  });
}

function sameParent(
  a: { group?: string | undefined; kind?: string | undefined; namespace?: string | undefined; name: string },
  b: typeof a,
): boolean {
  return (
    (a.group ?? 'gateway.networking.k8s.io') === (b.group ?? 'gateway.networking.k8s.io') &&
    (a.kind ?? 'Gateway') === (b.kind ?? 'Gateway') &&
    (a.namespace ?? '') === (b.namespace ?? '') &&
    a.name === b.name
  );
}

/** A Gateway API duration in milliseconds (the format is checked by the pattern first). */
export function durationMs(value: string): number {
  let ms = 0;
  for (const m of value.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += m[2] === 'h' ? n * 3_600_000 : m[2] === 'm' ? n * 60_000 : m[2] === 's' ? n * 1000 : n;
  }
  return ms;
}

// --- GRPCRoute ---

/** The CRD's CEL patterns for Exact service and method names. */
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

const grpcMethodMatch = z
  .object({
    type: enumOf(['Exact', 'RegularExpression']).optional(),
    service: z.string().max(1024, { error: 'must be at most 1024 characters' }).optional(),
    method: z.string().max(1024, { error: 'must be at most 1024 characters' }).optional(),
  })
  .superRefine((m, ctx) => {
    // `type` defaults to Exact, so the CRD's "has(self.type) ? ..." rule always applies.
    if (m.service === undefined && m.method === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: "one or both of 'service' or 'method' must be specified",
      });
    }
    if ((m.type ?? 'Exact') !== 'Exact') return;
    if (m.service !== undefined && !GRPC_SERVICE.test(m.service)) {
      ctx.addIssue({
        code: 'custom',
        path: ['service'],
        message: 'must be a gRPC service name like "helloworld.Greeter" (letters, digits, "_" and ".")',
      });
    }
    if (m.method !== undefined && !GRPC_METHOD.test(m.method)) {
      ctx.addIssue({
        code: 'custom',
        path: ['method'],
        message: 'must be a gRPC method name like "SayHello" (letters, digits and "_")',
      });
    }
  });

const grpcRouteMatch = z
  .object({
    method: grpcMethodMatch.optional(),
    headers: z.array(headerMatch).max(16).optional(),
  })
  .superRefine((m, ctx) => uniqueBy(m.headers, (h) => h.name, 'headers', 'name', ctx));

const grpcFilterTypes = [
  'ResponseHeaderModifier',
  'RequestHeaderModifier',
  'RequestMirror',
  'ExtensionRef',
] as const;

const grpcFilterFields: Record<(typeof grpcFilterTypes)[number], string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  ExtensionRef: 'extensionRef',
};

const grpcRouteFilter = z
  .object({
    type: enumOf(grpcFilterTypes),
    requestHeaderModifier: headerFilter.optional(),
    responseHeaderModifier: headerFilter.optional(),
    requestMirror: z.looseObject({}).optional(),
    extensionRef: z.object({ group, kind, name: objectName }).optional(),
  })
  .superRefine((f, ctx) => checkFilterFields(f, grpcFilterFields, ctx));

const grpcBackendRef = z
  .object({ ...backendRefFields, filters: z.array(grpcRouteFilter).max(16).optional() })
  .superRefine(checkBackendPort);

const grpcRouteRule = z
  .object({
    name: sectionName.optional(),
    // At most 8 matches in each of at most 16 rules: the CRD's limit of 128 in all cannot be exceeded.
    matches: z.array(grpcRouteMatch).max(8).optional(),
    filters: z.array(grpcRouteFilter).max(16).optional(),
    backendRefs: z.array(grpcBackendRef).max(16).optional(),
    sessionPersistence: z.unknown().optional(),
  })
  .superRefine((rule, ctx) => {
    const filters = rule.filters ?? [];
    for (const once of ['RequestHeaderModifier', 'ResponseHeaderModifier']) {
      if (filters.filter((f) => f.type === once).length > 1) {
        ctx.addIssue({ code: 'custom', path: ['filters'], message: `${once} filter cannot be repeated` });
      }
    }
  });

const grpcRouteSpec = z
  .object({
    parentRefs: z.array(parentReference).max(32).optional(),
    hostnames: z.array(hostname).max(16).optional(),
    rules: z.array(grpcRouteRule).max(16).optional(),
    useDefaultGateways: z.unknown().optional(),
  })
  .superRefine((spec, ctx) => {
    checkParentRefs(spec.parentRefs, ctx);
    uniqueBy(spec.rules, (r) => r.name, 'rules', 'name', ctx);
  });

// --- TLSRoute, TCPRoute, UDPRoute ---

const l4RouteRule = z.object({
  name: sectionName.optional(),
  backendRefs: z.array(plainBackendRef).min(1, { error: 'must list at least one backend' }).max(16),
});

/** TCPRoute, UDPRoute and v1alpha2 TLSRoute: one to 16 rules. */
const l4RouteRules = z.array(l4RouteRule).min(1, { error: 'must list at least one rule' }).max(16);

function l4RouteSpec<S extends z.ZodRawShape>(shape: S) {
  return z
    .object({
      parentRefs: z.array(parentReference).max(32).optional(),
      useDefaultGateways: z.unknown().optional(),
      ...shape,
    })
    .superRefine((value, ctx) => {
      const spec = value as {
        parentRefs?: z.infer<typeof parentReference>[];
        rules?: readonly { name?: string | undefined }[];
      };
      checkParentRefs(spec.parentRefs, ctx);
      uniqueBy(spec.rules, (r) => r.name, 'rules', 'name', ctx);
    });
}

const tcpRouteSpec = l4RouteSpec({ rules: l4RouteRules });
const udpRouteSpec = l4RouteSpec({ rules: l4RouteRules });
const tlsRouteSpecV1alpha2 = l4RouteSpec({
  hostnames: z.array(hostname).max(16).optional(),
  rules: l4RouteRules,
});
/** v1 and v1alpha3: SNI hostnames are required (and no IPs), and there is exactly one rule. */
const tlsRouteSpecV1 = l4RouteSpec({
  hostnames: z
    .array(hostname)
    .min(1, { error: 'must list at least one hostname' })
    .max(1024)
    .superRefine((names, ctx) => {
      names.forEach((h, i) => {
        if (isIP(h) !== 0)
          ctx.addIssue({ code: 'custom', path: [i], message: 'must be a hostname, not an IP' });
      });
    }),
  rules: z
    .array(l4RouteRule)
    .min(1, { error: 'must list exactly one rule' })
    .max(1, { error: 'must list exactly one rule' }),
});

// --- ReferenceGrant ---

const referenceGrantSpec = z.object({
  from: z
    .array(z.object({ group, kind, namespace }))
    .min(1, { error: 'must list at least one entry' })
    .max(16),
  to: z
    .array(z.object({ group, kind, name: objectName.optional() }))
    .min(1, { error: 'must list at least one entry' })
    .max(16),
});

// --- BackendTLSPolicy ---

const ABSOLUTE_URI = /^(([^:/?#]+):)(\/\/([^/?#]*))([^?#]*)(\?([^#]*))?(#(.*))?/;
const preciseHostname = pattern(
  SUBDOMAIN,
  'a hostname without wildcard (lower case letters, digits, - and .)',
  253,
);

const subjectAltName = z
  .object({
    type: enumOf(['Hostname', 'URI']),
    hostname: hostname.optional(),
    uri: pattern(
      ABSOLUTE_URI,
      "an absolute URI with a scheme, like 'spiffe://example.com/ns/a/sa/b'",
      253,
    ).optional(),
  })
  .superRefine((san, ctx) => {
    for (const [type, field] of [
      ['Hostname', 'hostname'],
      ['URI', 'uri'],
    ] as const) {
      const present = san[field] !== undefined;
      if (san.type === type && !present) {
        ctx.addIssue({ code: 'custom', path: [field], message: `is required when type is ${type}` });
      }
      if (san.type !== type && present) {
        ctx.addIssue({ code: 'custom', path: [field], message: `must not be set when type is ${san.type}` });
      }
    }
  });

const backendTLSPolicyValidation = z
  .object({
    caCertificateRefs: z
      .array(z.object({ group, kind, name: objectName }))
      .max(8)
      .optional(),
    wellKnownCACertificates: enumOf(['System']).optional(),
    hostname: preciseHostname,
    subjectAltNames: z.array(subjectAltName).max(5).optional(),
  })
  .superRefine((v, ctx) => {
    const refs = (v.caCertificateRefs?.length ?? 0) > 0;
    const wellKnown = v.wellKnownCACertificates !== undefined;
    if (refs && wellKnown) {
      ctx.addIssue({
        code: 'custom',
        path: ['wellKnownCACertificates'],
        message: 'must not be set together with caCertificateRefs',
      });
    }
    if (!refs && !wellKnown) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: 'must specify either caCertificateRefs or wellKnownCACertificates',
      });
    }
  });

const backendTLSPolicySpec = z
  .object({
    targetRefs: z
      .array(z.object({ group, kind, name: objectName, sectionName: sectionName.optional() }))
      .min(1, { error: 'must list at least one target' })
      .max(16),
    validation: backendTLSPolicyValidation,
    options: z
      .record(z.string(), z.string({ error: 'option values must be strings' }))
      .refine((o) => Object.keys(o).length <= 16, { error: 'must have at most 16 entries' })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    // The CEL rules of targetRefs: refs to the same target all name a sectionName (or none does), and
    // never the same one twice.
    spec.targetRefs.forEach((a, i) => {
      spec.targetRefs.forEach((b, j) => {
        if (j <= i || a.group !== b.group || a.kind !== b.kind || a.name !== b.name) return;
        const aHas = (a.sectionName ?? '') !== '';
        const bHas = (b.sectionName ?? '') !== '';
        if (aHas !== bHas) {
          ctx.addIssue({
            code: 'custom',
            path: ['targetRefs', j],
            message:
              'sectionName must be specified when targetRefs includes 2 or more references to the same target',
          });
        } else if ((a.sectionName ?? '') === (b.sectionName ?? '')) {
          ctx.addIssue({
            code: 'custom',
            path: ['targetRefs', j],
            message:
              'sectionName must be unique when targetRefs includes 2 or more references to the same target',
          });
        }
      });
    });
  });

// --- Service (core v1) ---

const servicePort = z.object({
  name: dnsLabel.optional(),
  port: portNumber,
  targetPort: z
    .union([portNumber, pattern(IANA_SVC_NAME, 'a port number or an IANA service name', 15)])
    .optional(),
  protocol: enumOf(['TCP', 'UDP', 'SCTP']).optional(),
  appProtocol: z.string().min(1).optional(),
  nodePort: portNumber.optional(),
});

// Loose: a Service spec has many fields (sessionAffinity, ipFamilies, ...) that Skein does not read.
const serviceSpec = z
  .looseObject({
    type: enumOf(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).optional(),
    clusterIP: z.string().optional(),
    ports: z.array(servicePort).optional(),
    selector: z.record(z.string(), z.string()).optional(),
  })
  .superRefine((spec, ctx) => {
    const ports = spec.ports ?? [];
    if (ports.length === 0 && spec.type !== 'ExternalName' && spec.clusterIP !== 'None') {
      ctx.addIssue({
        code: 'custom',
        path: ['ports'],
        message: 'is required unless the Service is headless or ExternalName',
      });
    }
    if (ports.length > 1) {
      ports.forEach((p, i) => {
        if (p.name === undefined || p.name === '') {
          ctx.addIssue({
            code: 'custom',
            path: ['ports', i, 'name'],
            message: 'is required when the Service has more than one port',
          });
        }
      });
    }
    uniqueBy(ports, (p) => p.name, 'ports', 'name', ctx);
    uniqueBy(ports, (p) => `${p.port}/${p.protocol ?? 'TCP'}`, 'ports', 'port', ctx);
  });

// --- EndpointSlice (discovery.k8s.io/v1) ---

const endpoint = z.looseObject({
  addresses: z.array(z.string()).min(1, { error: 'must list at least one address' }).max(100),
  conditions: z
    .object({
      ready: z.boolean().optional(),
      serving: z.boolean().optional(),
      terminating: z.boolean().optional(),
    })
    .optional(),
  hostname: dnsLabel.optional(),
  nodeName: z.string().optional(),
  zone: z.string().optional(),
});

const endpointSlicePort = z.object({
  name: z
    .string()
    .max(63)
    .regex(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, { error: 'must be empty or a DNS label' })
    .optional(),
  port: portNumber.optional(),
  protocol: enumOf(['TCP', 'UDP', 'SCTP']).optional(),
  appProtocol: z.string().optional(),
});

// --- Secret (core v1) ---

const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;
/** Standard base64 with padding, as Go's encoding/json decodes a []byte (it skips CR and LF). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** The API server's limit on a Secret's data and stringData together. */
const MAX_SECRET_BYTES = 1024 * 1024;

/** Keys a Secret of a given type must hold (in data or stringData), as the API server checks. */
const requiredSecretKeys: Readonly<Record<string, readonly string[]>> = {
  'kubernetes.io/tls': ['tls.crt', 'tls.key'],
};

// Messages about a Secret never quote a value: Secrets must not reach logs.
const secretSchema = z
  .object({
    apiVersion: z.string(),
    kind: z.string(),
    metadata: metadata(subdomain),
    type: z.string({ error: 'must be a string' }).optional(),
    immutable: z.boolean({ error: 'must be true or false' }).optional(),
    data: z
      .record(z.string(), z.string({ error: 'values must be base64 strings' }), {
        error: 'must be a mapping of keys to base64 strings',
      })
      .optional(),
    stringData: z
      .record(z.string(), z.string({ error: 'values must be strings' }), {
        error: 'must be a mapping of keys to strings',
      })
      .optional(),
  })
  .superRefine((secret, ctx) => {
    let bytes = 0;
    for (const field of ['data', 'stringData'] as const) {
      for (const [key, value] of Object.entries(secret[field] ?? {})) {
        if (key.length > 253 || !CONFIG_KEY.test(key)) {
          ctx.addIssue({
            code: 'custom',
            path: [field, key],
            message: 'keys must be at most 253 letters, digits, "-", "_" or "."',
          });
        }
        if (field === 'data') {
          const compact = value.replace(/[\r\n]/g, '');
          if (!BASE64.test(compact)) {
            ctx.addIssue({ code: 'custom', path: [field, key], message: 'must be base64 (value not shown)' });
          }
          bytes += Math.floor((compact.length * 3) / 4) - (compact.match(/=+$/)?.[0].length ?? 0);
        } else {
          bytes += Buffer.byteLength(value);
        }
      }
    }
    if (bytes > MAX_SECRET_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: ['data'],
        message: `must hold at most ${MAX_SECRET_BYTES} bytes in data and stringData together`,
      });
    }
    for (const key of requiredSecretKeys[secret.type ?? ''] ?? []) {
      if (secret.data?.[key] === undefined && secret.stringData?.[key] === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['data', key],
          message: `is required for a Secret of type ${secret.type ?? ''}`,
        });
      }
    }
  });

// --- ConfigMap (core v1) ---

/** The API server's limit on a ConfigMap's data and binaryData together. */
const MAX_CONFIG_MAP_BYTES = 1024 * 1024;

const configMapSchema = z
  .object({
    apiVersion: z.string(),
    kind: z.string(),
    metadata: metadata(subdomain),
    immutable: z.boolean({ error: 'must be true or false' }).optional(),
    data: z
      .record(z.string(), z.string({ error: 'values must be strings' }), {
        error: 'must be a mapping of keys to strings',
      })
      .optional(),
    binaryData: z
      .record(z.string(), z.string({ error: 'values must be base64 strings' }), {
        error: 'must be a mapping of keys to base64 strings',
      })
      .optional(),
  })
  .superRefine((cm, ctx) => {
    let bytes = 0;
    const seen = new Set<string>();
    for (const field of ['data', 'binaryData'] as const) {
      for (const [key, value] of Object.entries(cm[field] ?? {})) {
        if (key.length > 253 || !CONFIG_KEY.test(key)) {
          ctx.addIssue({
            code: 'custom',
            path: [field, key],
            message: 'keys must be at most 253 letters, digits, "-", "_" or "."',
          });
        }
        if (seen.has(key)) {
          ctx.addIssue({
            code: 'custom',
            path: [field, key],
            message: 'must not be in both data and binaryData',
          });
        }
        seen.add(key);
        if (field === 'binaryData' && !BASE64.test(value.replace(/[\r\n]/g, ''))) {
          ctx.addIssue({ code: 'custom', path: [field, key], message: 'must be base64' });
        }
        bytes += Buffer.byteLength(value);
      }
    }
    if (bytes > MAX_CONFIG_MAP_BYTES) {
      ctx.addIssue({
        code: 'custom',
        path: ['data'],
        message: `must hold at most ${MAX_CONFIG_MAP_BYTES} bytes in data and binaryData together`,
      });
    }
  });

// --- Namespace (core v1) ---

const namespaceSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: metadata(dnsLabel),
  spec: z.object({ finalizers: z.array(z.string()).optional() }).optional(),
  status: z.unknown().optional(),
});

// --- Ingress, IngressClass (networking.k8s.io/v1) ---

const WILDCARD_SUBDOMAIN = /^\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** An Ingress host: a DNS subdomain, optionally with a leading `*.`, and not an IP address. */
const ingressHost = z.string().superRefine((host, ctx) => {
  const ok = host.length <= 253 && (host.includes('*') ? WILDCARD_SUBDOMAIN : SUBDOMAIN).test(host);
  if (isIP(host) !== 0) {
    ctx.addIssue({ code: 'custom', message: 'must be a DNS name, not an IP address' });
  } else if (!ok) {
    ctx.addIssue({
      code: 'custom',
      message:
        "must be a DNS subdomain, optionally with a leading '*.' (lower case letters, digits, '-' and '.')",
    });
  }
});

/** Kubernetes' IsValidPortName: an IANA service name. */
function portNameProblem(name: string): string | undefined {
  if (name.length > 15) return 'must be at most 15 characters';
  if (!/^[-a-z0-9]+$/.test(name)) return "must contain only lower case letters, digits and '-'";
  if (!/[a-z]/.test(name)) return 'must contain at least one letter';
  if (name.includes('--')) return "must not contain '--'";
  if (name.startsWith('-') || name.endsWith('-')) return "must not begin or end with '-'";
  return undefined;
}

/** A path segment name (IsValidPathSegmentName): not '.' or '..', no '/' or '%'. */
const pathSegment = z
  .string()
  .min(1, { error: 'must not be empty' })
  .refine((s) => s !== '.' && s !== '..' && !/[/%]/.test(s), {
    error: "must be a path segment name (not '.' or '..', no '/' or '%')",
  });

const typedLocalObjectReference = z.object({
  apiGroup: subdomain.optional(),
  kind: pathSegment,
  name: pathSegment,
});

const ingressBackend = z
  .object({
    service: z
      .object({
        name: pattern(
          DNS1035,
          "a DNS-1035 label (lower case letters, digits and '-', starting with a letter)",
          63,
        ),
        port: z
          .object({
            name: z
              .string()
              .superRefine((n, ctx) => {
                const problem = n === '' ? undefined : portNameProblem(n);
                if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
              })
              .optional(),
            // 0 means unset, as in the API.
            number: z
              .number({ error: 'must be an integer' })
              .int({ error: 'must be an integer' })
              .min(0, { error: 'must be a port in 1..65535' })
              .max(65535, { error: 'must be a port in 1..65535' })
              .optional(),
          })
          .optional(),
      })
      .optional(),
    resource: typedLocalObjectReference.optional(),
  })
  .superRefine((b, ctx) => {
    if (b.service !== undefined && b.resource !== undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'cannot set both resource and service backends' });
    } else if (b.service === undefined && b.resource === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'a resource or service backend is required' });
    }
    if (b.service === undefined) return;
    const hasName = (b.service.port?.name ?? '') !== '';
    const hasNumber = (b.service.port?.number ?? 0) !== 0;
    if (hasName && hasNumber) {
      ctx.addIssue({
        code: 'custom',
        path: ['service', 'port'],
        message: 'cannot set both port name and port number',
      });
    } else if (!hasName && !hasNumber) {
      ctx.addIssue({
        code: 'custom',
        path: ['service', 'port'],
        message: 'a port name or number is required',
      });
    }
  });

const httpIngressPath = z
  .object({
    path: z.string().optional(),
    pathType: enumOf(['Exact', 'Prefix', 'ImplementationSpecific']),
    backend: ingressBackend,
  })
  .superRefine((p, ctx) => {
    const problem = ingressPathProblem(p.path ?? '', p.pathType);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['path'], message: problem });
  });

/** The API server's checks of an Ingress path, in its order. */
function ingressPathProblem(path: string, type: string): string | undefined {
  if (type === 'ImplementationSpecific') {
    return path !== '' && !path.startsWith('/') ? "must be an absolute path starting with '/'" : undefined;
  }
  if (!path.startsWith('/')) return `must be an absolute path starting with '/' (pathType ${type})`;
  for (const bad of ['//', '/./', '/../', '%2f', '%2F']) {
    if (path.includes(bad)) return `must not contain '${bad}' (pathType ${type})`;
  }
  for (const bad of ['/..', '/.']) {
    if (path.endsWith(bad)) return `must not end with '${bad}' (pathType ${type})`;
  }
  return undefined;
}

const ingressSpec = z
  .object({
    ingressClassName: subdomain.optional(),
    defaultBackend: ingressBackend.optional(),
    tls: z
      .array(
        z.object({
          hosts: z.array(ingressHost).optional(),
          secretName: z.string().optional(),
        }),
      )
      .optional(),
    rules: z
      .array(
        z.object({
          // An empty host matches every host.
          host: z.union([z.literal(''), ingressHost]).optional(),
          http: z
            .object({ paths: z.array(httpIngressPath).min(1, { error: 'must list at least one path' }) })
            .optional(),
        }),
      )
      .optional(),
  })
  .superRefine((spec, ctx) => {
    if ((spec.rules?.length ?? 0) === 0 && spec.defaultBackend === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'either defaultBackend or rules must be specified' });
    }
  });

const ingressClassSpec = z.object({
  controller: pattern(CONTROLLER, "a domain-prefixed path like 'example.com/ingress-controller'", 250),
  parameters: z
    .object({
      apiGroup: subdomain.optional(),
      kind: pathSegment,
      name: pathSegment,
      namespace: namespace.optional(),
      scope: enumOf(['Cluster', 'Namespace']).optional(),
    })
    .superRefine((p, ctx) => {
      if (p.scope === 'Namespace' && p.namespace === undefined) {
        ctx.addIssue({ code: 'custom', path: ['namespace'], message: 'is required when scope is Namespace' });
      }
      if ((p.scope ?? 'Cluster') === 'Cluster' && p.namespace !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['namespace'],
          message: 'must not be set when scope is Cluster',
        });
      }
    })
    .optional(),
});

// --- Top-level objects ---

function objectSchema<S extends z.ZodType>(name: z.ZodString, spec: S) {
  return z.object({
    apiVersion: z.string(),
    kind: z.string(),
    metadata: metadata(name),
    spec,
    status: z.unknown().optional(),
  });
}

const endpointSliceSchema = z
  .object({
    apiVersion: z.string(),
    kind: z.string(),
    metadata: metadata(subdomain),
    addressType: enumOf(['IPv4', 'IPv6', 'FQDN']),
    endpoints: z.array(endpoint).max(1000),
    ports: z.array(endpointSlicePort).max(100).optional(),
  })
  .superRefine((slice, ctx) => {
    slice.endpoints.forEach((e, i) => {
      e.addresses.forEach((a, j) => {
        const ok =
          slice.addressType === 'IPv4'
            ? isIP(a) === 4
            : slice.addressType === 'IPv6'
              ? isIP(a) === 6
              : SUBDOMAIN.test(a);
        if (!ok) {
          ctx.addIssue({
            code: 'custom',
            path: ['endpoints', i, 'addresses', j],
            message: `must be an ${slice.addressType === 'FQDN' ? 'FQDN' : `${slice.addressType} address`} (addressType is ${slice.addressType})`,
          });
        }
      });
    });
    uniqueBy(slice.ports, (p) => p.name ?? '', 'ports', 'name', ctx);
  });

// --- NetworkPolicy (networking.k8s.io/v1), Pod (core v1) ---

/** A LabelSelector as the API server validates it for built-in kinds (metav1 ValidateLabelSelector). */
const strictLabelSelector = z
  .object({
    matchLabels: labelMap.optional(),
    matchExpressions: z
      .array(
        z.object({
          key: z.string().refine(validLabelKey, { error: 'must be a label key' }),
          operator: enumOf(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: z.array(z.string()).optional(),
        }),
      )
      .optional(),
  })
  .superRefine((sel, ctx) => {
    sel.matchExpressions?.forEach((e, i) => {
      const some = (e.values?.length ?? 0) > 0;
      if ((e.operator === 'In' || e.operator === 'NotIn') && !some) {
        ctx.addIssue({
          code: 'custom',
          path: ['matchExpressions', i, 'values'],
          message: `must be non-empty when operator is ${e.operator}`,
        });
      }
      if ((e.operator === 'Exists' || e.operator === 'DoesNotExist') && some) {
        ctx.addIssue({
          code: 'custom',
          path: ['matchExpressions', i, 'values'],
          message: `must be empty when operator is ${e.operator}`,
        });
      }
    });
  });

/** A CIDR: an IP address, '/', a prefix length the family allows. */
function cidrProblem(text: string): string | undefined {
  const slash = text.indexOf('/');
  const family = slash < 0 ? 0 : isIP(text.slice(0, slash));
  const bits = slash < 0 ? '' : text.slice(slash + 1);
  if (family === 0 || !/^(0|[1-9][0-9]{0,2})$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128)) {
    return "must be a CIDR like '10.0.0.0/16' or '2001:db8::/64'";
  }
  return undefined;
}

/** The address bits of a CIDR as a string of 0/1 (family-tagged), for the except ⊂ cidr check. */
function cidrBits(text: string): string {
  const [addr = '', len = '0'] = text.split('/');
  let bits = '';
  if (isIP(addr) === 4) {
    for (const part of addr.split('.')) bits += Number(part).toString(2).padStart(8, '0');
  } else {
    let full = addr;
    if (full.includes('.')) {
      const i = full.lastIndexOf(':');
      const v4 = full
        .slice(i + 1)
        .split('.')
        .map(Number);
      full = `${full.slice(0, i + 1)}${(((v4[0] ?? 0) << 8) | (v4[1] ?? 0)).toString(16)}:${(((v4[2] ?? 0) << 8) | (v4[3] ?? 0)).toString(16)}`;
    }
    const [head = '', tail] = full.split('::');
    const h = head === '' ? [] : head.split(':');
    const t = tail === undefined || tail === '' ? [] : tail.split(':');
    const groups = [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
    for (const g of groups) bits += Number.parseInt(g, 16).toString(2).padStart(16, '0');
  }
  return `${isIP(addr)}:${bits.slice(0, Number(len))}`;
}

const networkPolicyPort = z
  .object({
    protocol: enumOf(['TCP', 'UDP', 'SCTP']).optional(),
    port: z
      .union([z.number(), z.string()], { error: 'must be a port number or a port name' })
      .superRefine((p, ctx) => {
        if (typeof p === 'number') {
          if (!Number.isInteger(p) || p < 1 || p > 65535)
            ctx.addIssue({ code: 'custom', message: 'must be a port in 1..65535' });
        } else {
          const problem = portNameProblem(p);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        }
      })
      .optional(),
    endPort: z
      .number({ error: 'must be an integer' })
      .int({ error: 'must be an integer' })
      .max(65535, { error: 'must be a port in 1..65535' })
      .optional(),
  })
  .superRefine((p, ctx) => {
    if (p.endPort === undefined) return;
    if (typeof p.port !== 'number') {
      ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'may only be set with a numeric port' });
    } else if (p.endPort < p.port) {
      ctx.addIssue({ code: 'custom', path: ['endPort'], message: 'must be greater than or equal to port' });
    }
  });

const networkPolicyPeer = z
  .object({
    podSelector: strictLabelSelector.optional(),
    namespaceSelector: strictLabelSelector.optional(),
    ipBlock: z
      .object({
        cidr: z.string().superRefine((c, ctx) => {
          const problem = cidrProblem(c);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        }),
        except: z.array(z.string()).optional(),
      })
      .superRefine((b, ctx) => {
        if (cidrProblem(b.cidr) !== undefined) return;
        const outer = cidrBits(b.cidr);
        b.except?.forEach((e, i) => {
          const problem = cidrProblem(e);
          const inner = problem === undefined ? cidrBits(e) : '';
          if (problem !== undefined) {
            ctx.addIssue({ code: 'custom', path: ['except', i], message: problem });
          } else if (!inner.startsWith(outer) || inner === outer) {
            ctx.addIssue({
              code: 'custom',
              path: ['except', i],
              message: `must be a strict subset of ${b.cidr}`,
            });
          }
        });
      })
      .optional(),
  })
  .superRefine((peer, ctx) => {
    const selectors = peer.podSelector !== undefined || peer.namespaceSelector !== undefined;
    if (peer.ipBlock !== undefined && selectors) {
      ctx.addIssue({
        code: 'custom',
        path: ['ipBlock'],
        message: 'may not be set with podSelector or namespaceSelector',
      });
    } else if (peer.ipBlock === undefined && !selectors) {
      ctx.addIssue({ code: 'custom', message: 'must set one of podSelector, namespaceSelector or ipBlock' });
    }
  });

const networkPolicySpec = z.object({
  podSelector: strictLabelSelector,
  ingress: z
    .array(
      z.object({ from: z.array(networkPolicyPeer).optional(), ports: z.array(networkPolicyPort).optional() }),
    )
    .optional(),
  egress: z
    .array(
      z.object({ to: z.array(networkPolicyPeer).optional(), ports: z.array(networkPolicyPort).optional() }),
    )
    .optional(),
  policyTypes: z
    .array(enumOf(['Ingress', 'Egress']))
    .max(2)
    .superRefine((types, ctx) => {
      if (new Set(types).size !== types.length)
        ctx.addIssue({ code: 'custom', message: 'must not repeat a type' });
    })
    .optional(),
});

// Pods carry far more than policy reads; the fields it reads are checked, the rest passes untouched.
const podSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: metadata(subdomain),
  spec: z.looseObject({
    nodeName: z.string().optional(),
    hostNetwork: z.boolean({ error: 'must be true or false' }).optional(),
    containers: z.array(
      z.looseObject({
        name: dnsLabel,
        ports: z
          .array(
            z.looseObject({
              name: z
                .string()
                .superRefine((n, ctx) => {
                  const problem = portNameProblem(n);
                  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
                })
                .optional(),
              containerPort: portNumber,
              protocol: enumOf(['TCP', 'UDP', 'SCTP']).optional(),
            }),
          )
          .optional(),
      }),
    ),
  }),
  status: z
    .looseObject({
      phase: z.string().optional(),
      podIP: z
        .string()
        .refine((a) => isIP(a) !== 0, { error: 'must be an IP address' })
        .optional(),
      podIPs: z
        .array(z.object({ ip: z.string().refine((a) => isIP(a) !== 0, { error: 'must be an IP address' }) }))
        .max(2)
        .optional(),
    })
    .optional(),
});

/** The schema of each kind Skein reads. */
export const objectSchemas: Record<KnownKind, z.ZodType> = {
  GatewayClass: objectSchema(subdomain, gatewayClassSpec),
  Gateway: objectSchema(subdomain, gatewaySpec),
  HTTPRoute: objectSchema(subdomain, httpRouteSpec),
  // Service names are DNS-1035 labels: they become DNS names and environment variable prefixes.
  Service: objectSchema(
    pattern(DNS1035, "a DNS-1035 label (lower case letters, digits and '-', starting with a letter)", 63),
    serviceSpec,
  ),
  EndpointSlice: endpointSliceSchema,
  GRPCRoute: objectSchema(subdomain, grpcRouteSpec),
  // spec is optional in the ReferenceGrant CRD (an empty grant grants nothing).
  ReferenceGrant: z.object({
    apiVersion: z.string(),
    kind: z.string(),
    metadata: metadata(subdomain),
    spec: referenceGrantSpec.optional(),
  }),
  // The v1alpha2 schema differs (optional hostnames, up to 16 rules): the apiVersion picks the schema.
  TLSRoute: z.discriminatedUnion('apiVersion', [
    objectSchema(subdomain, tlsRouteSpecV1alpha2).extend({
      apiVersion: z.literal('gateway.networking.k8s.io/v1alpha2'),
    }),
    objectSchema(subdomain, tlsRouteSpecV1).extend({
      apiVersion: z.enum(['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha3']),
    }),
  ]),
  TCPRoute: objectSchema(subdomain, tcpRouteSpec),
  UDPRoute: objectSchema(subdomain, udpRouteSpec),
  BackendTLSPolicy: objectSchema(subdomain, backendTLSPolicySpec),
  Secret: secretSchema,
  Namespace: namespaceSchema,
  Ingress: objectSchema(subdomain, ingressSpec),
  IngressClass: objectSchema(subdomain, ingressClassSpec),
  ConfigMap: configMapSchema,
  NetworkPolicy: objectSchema(subdomain, networkPolicySpec),
  Pod: podSchema,
};

/**
 * The apiVersions accepted for each kind. v1beta1 Gateway API objects have the same schema as v1 for
 * these kinds (the API server serves both), so they are read the same way.
 */
export const acceptedApiVersions: Record<KnownKind, readonly string[]> = {
  GatewayClass: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Gateway: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  HTTPRoute: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  Service: ['v1'],
  EndpointSlice: ['discovery.k8s.io/v1'],
  GRPCRoute: ['gateway.networking.k8s.io/v1'],
  ReferenceGrant: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1beta1'],
  TLSRoute: [
    'gateway.networking.k8s.io/v1',
    'gateway.networking.k8s.io/v1alpha3',
    'gateway.networking.k8s.io/v1alpha2',
  ],
  TCPRoute: ['gateway.networking.k8s.io/v1alpha2'],
  UDPRoute: ['gateway.networking.k8s.io/v1alpha2'],
  BackendTLSPolicy: ['gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha3'],
  Secret: ['v1'],
  Namespace: ['v1'],
  Ingress: ['networking.k8s.io/v1'],
  IngressClass: ['networking.k8s.io/v1'],
  ConfigMap: ['v1'],
  NetworkPolicy: ['networking.k8s.io/v1'],
  Pod: ['v1'],
};

/**
 * Kinds whose objects are rewritten to one apiVersion when read, because every version has the same
 * schema and no status is written back: translators then see a single type.
 */
export const normalApiVersion: Partial<Record<KnownKind, string>> = {
  ReferenceGrant: 'gateway.networking.k8s.io/v1',
};

/** Kinds without a namespace: any `metadata.namespace` they carry is ignored, as the API server does. */
export const clusterScoped: ReadonlySet<KnownKind> = new Set(['GatewayClass', 'Namespace', 'IngressClass']);

/**
 * Labels the API server sets on an object itself, over any value given: every Namespace carries
 * `kubernetes.io/metadata.name` (so that selectors can pick a namespace by name).
 */
export function defaultLabels(kind: KnownKind, name: string | undefined): Record<string, string> | undefined {
  return kind === 'Namespace' && name !== undefined ? { 'kubernetes.io/metadata.name': name } : undefined;
}

function uniqueBy<T>(
  items: readonly T[] | undefined,
  key: (item: T) => string | undefined,
  listPath: string,
  field: string | undefined,
  ctx: z.RefinementCtx,
): void {
  const seen = new Set<string>();
  items?.forEach((item, i) => {
    const k = key(item);
    if (k === undefined) return;
    if (seen.has(k)) {
      const path = field === undefined ? [listPath, i] : [listPath, i, field];
      ctx.addIssue({ code: 'custom', path, message: `duplicate value "${k}"` });
    }
    seen.add(k);
  });
}
