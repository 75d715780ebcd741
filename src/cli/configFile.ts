import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';

/**
 * The settings file of `skein agent` and `skein operator` (`--config PATH`): the YAML the Helm chart
 * writes into its ConfigMap (charts/skein/templates/configmap.yaml, mounted at /etc/skein/config.yaml).
 * Every key is optional and has the chart's default; an unknown key or a bad value is refused with the
 * field's dotted path. Flags given on the command line win over the file (docs/kubernetes.md).
 */

export const ConfigCode = {
  /** The file cannot be read or is not YAML. */
  Unreadable: 'SKEIN_CONFIG_UNREADABLE',
  /** A setting has a value Skein cannot use, or Skein knows no such setting. */
  Invalid: 'SKEIN_CONFIG_INVALID',
  /** A setting is accepted but its feature is not implemented yet (encryption): said at start. */
  NotImplemented: 'SKEIN_CONFIG_NOT_IMPLEMENTED',
} as const;

export class ConfigError extends Error {
  constructor(
    readonly code: (typeof ConfigCode)[keyof typeof ConfigCode],
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** IngressClass and GatewayClass controller names: a domain-prefixed path, as the API server checks them. */
const controllerName = z
  .string()
  .max(253)
  .regex(
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/_.~%!$&'()*+,;=:@-]+$/,
    {
      error: 'must be a domain-prefixed path such as example.com/gateway-controller',
    },
  );

const absolutePath = z.string().refine((p) => path.isAbsolute(p) && path.normalize(p) === p, {
  error: 'must be an absolute, normalised path',
});

const port = z.number().int().min(1).max(65535);

export const FLOW_EVENT_LEVELS = ['none', 'drops', 'flows', 'packets'] as const;

const datapathSchema = z
  .object({
    /** Run the eBPF datapath at all (off: L7 only, as on a machine that cannot load BPF). */
    enabled: z.boolean().default(true),
    /** The BPF filesystem the pins live on. */
    bpffsRoot: absolutePath.default('/sys/fs/bpf'),
    /** Where maps, programs and links are pinned; under bpffsRoot. Default `<bpffsRoot>/skein`. */
    pinRoot: absolutePath.optional(),
    /** The cgroup v2 directory the socket load-balancing programs attach to (every process below it). */
    cgroupRoot: absolutePath.default('/sys/fs/cgroup'),
    /** Where the agent keeps state across restarts (the identity numbers it handed out). */
    stateDir: absolutePath.default('/var/lib/skein'),
    /** The network namespace (a path) of the pods' host-side interfaces. Default: the agent's own. */
    netns: absolutePath.optional(),
    /** The node Envoy's transparent listener, target of L7 redirects. */
    proxyPort: port.default(15001),
    /** Which flow events the policy programs send: none, drops, flows (drops and new flows), packets. */
    flowEvents: z.enum(FLOW_EVENT_LEVELS).default('flows'),
  })
  .strict()
  .refine((d) => d.pinRoot === undefined || d.pinRoot.startsWith(`${d.bpffsRoot.replace(/\/$/, '')}/`), {
    error: 'must be a directory under datapath.bpffsRoot',
    path: ['pinRoot'],
  });

export const configSchema = z
  .object({
    gatewayControllerName: controllerName.default('skein.io/gateway-controller'),
    ingressControllerName: controllerName.default('skein.io/ingress-controller'),
    /** Validated and reported; not wired yet (docs/kubernetes.md). */
    encryption: z
      .object({ enabled: z.boolean().default(false), type: z.enum(['wireguard']).default('wireguard') })
      .strict()
      .default({ enabled: false, type: 'wireguard' }),
    /** Redirect what L7 policy asks for to the node Envoy. */
    l7Proxy: z.boolean().default(true),
    /** Balance Service ClusterIPs at the socket (the eBPF kube-proxy replacement). */
    kubeProxyReplacement: z.boolean().default(false),
    datapath: datapathSchema.default({
      enabled: true,
      bpffsRoot: '/sys/fs/bpf',
      cgroupRoot: '/sys/fs/cgroup',
      stateDir: '/var/lib/skein',
      proxyPort: 15001,
      flowEvents: 'flows',
    }),
  })
  .strict();

export type SkeinConfig = z.infer<typeof configSchema>;

/** The settings when there is no file: every default. */
export function defaultConfig(): SkeinConfig {
  return configSchema.parse({});
}

/** Reads and checks a settings file; throws ConfigError naming the file and the field. */
export function loadConfigFile(file: string): SkeinConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it does not exist' : String(e);
    throw new ConfigError(ConfigCode.Unreadable, `Cannot read the settings file ${file}: ${why}`);
  }
  let data: unknown;
  try {
    data = parse(text) ?? {};
  } catch (e) {
    throw new ConfigError(
      ConfigCode.Unreadable,
      `Cannot read the settings file ${file}: it is not YAML (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`,
    );
  }
  return parseConfig(data, file);
}

/** Checks settings already parsed from YAML; `file` names them in messages. */
export function parseConfig(data: unknown, file: string): SkeinConfig {
  const r = configSchema.safeParse(data);
  if (r.success) return r.data;
  const problems = r.error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') {
      return i.keys.map((k) => `${[...i.path, k].join('.')}: Skein knows no such setting`).join('; ');
    }
    const where = i.path.length === 0 ? '(the file)' : i.path.join('.');
    return `${where}: ${i.message}${describeValue(data, i.path)}`;
  });
  throw new ConfigError(ConfigCode.Invalid, `Cannot use the settings file ${file}: ${problems.join('; ')}`);
}

/** `, not <value>` for the value at `p` in `data`, when there is one. */
function describeValue(data: unknown, p: readonly PropertyKey[]): string {
  let v: unknown = data;
  for (const k of p) {
    if (typeof v !== 'object' || v === null) return '';
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v === undefined || typeof v === 'object' ? '' : ` (not ${JSON.stringify(v)})`;
}
