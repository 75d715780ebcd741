import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { IrSecret } from '../model/ir.js';
import { secretName } from '../model/names.js';
import type { Secret } from '../sources/objects.js';
import type { ReferenceGrantIndex } from './referenceGrants.js';

/** A listener's `tls.certificateRefs[i]` (SecretObjectReference). */
export interface CertificateRef {
  readonly group?: string;
  readonly kind?: string;
  readonly name: string;
  readonly namespace?: string;
}

/**
 * A certificateRef resolved: the IR secret it names, or why it names none, with the listener's
 * ResolvedRefs reason (`InvalidCertificateRef`: not a Secret, missing, not kubernetes.io/tls, or PEM that
 * does not parse or whose key does not match; `RefNotPermitted`: in another namespace with no
 * ReferenceGrant that allows it).
 */
export type CertificateResolution =
  | { readonly ok: true; readonly secret: IrSecret }
  | {
      readonly ok: false;
      readonly reason: 'InvalidCertificateRef' | 'RefNotPermitted';
      readonly message: string;
    };

/** What a Secret's content is worth as a serving certificate; computed once per Secret object. */
type SecretCheck =
  /** The IR secret is made once per Secret object, so an unchanged Secret keeps its identity downstream. */
  { readonly ok: true; readonly secret: IrSecret } | { readonly ok: false; readonly problem: string };

const checked = new WeakMap<Secret, SecretCheck>();

/**
 * The Secrets a build has, for listeners' certificateRefs. A reference from a Gateway to a Secret in
 * another namespace needs a ReferenceGrant there (from Gateway in the Gateway's namespace, to Secret).
 * PEM checks run once per Secret object (they parse X.509 and keys), so an unchanged Secret costs a
 * lookup on the next build.
 */
export class SecretIndex {
  readonly #secrets = new Map<string, Secret>();
  readonly #grants: ReferenceGrantIndex;

  constructor(secrets: readonly Secret[], grants: ReferenceGrantIndex) {
    for (const s of secrets)
      this.#secrets.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s);
    this.#grants = grants;
  }

  resolve(ref: CertificateRef, gatewayNamespace: string): CertificateResolution {
    const group = ref.group ?? '';
    const kind = ref.kind ?? 'Secret';
    const namespace = ref.namespace ?? gatewayNamespace;
    const what = `${namespace}/${ref.name}`;
    if (group !== '' || kind !== 'Secret') {
      return {
        ok: false,
        reason: 'InvalidCertificateRef',
        message: `${group === '' ? kind : `${group}/${kind}`} ${what} is not a core Secret, the only certificate kind Skein reads`,
      };
    }
    const allowed = this.#grants.allows(
      { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: gatewayNamespace },
      { group: '', kind: 'Secret', namespace, name: ref.name },
    );
    if (!allowed) {
      return {
        ok: false,
        reason: 'RefNotPermitted',
        message: `Secret ${what} is in another namespace and no ReferenceGrant in ${namespace} allows Gateways of ${gatewayNamespace} to use it`,
      };
    }
    const secret = this.#secrets.get(what);
    if (secret === undefined) {
      return { ok: false, reason: 'InvalidCertificateRef', message: `Secret ${what} not found` };
    }
    let check = checked.get(secret);
    if (check === undefined) {
      check = checkSecret(secret);
      checked.set(secret, check);
    }
    if (!check.ok) {
      return { ok: false, reason: 'InvalidCertificateRef', message: `Secret ${what} ${check.problem}` };
    }
    return { ok: true, secret: check.secret };
  }
}

export const TLS_SECRET_TYPE = 'kubernetes.io/tls';

/**
 * Whether a Secret can serve TLS: type kubernetes.io/tls, `tls.crt` holding one or more PEM
 * certificates that parse, `tls.key` a PEM private key that parses and belongs to the first (leaf)
 * certificate. `stringData` (plain text) wins over `data` (base64), as the API server merges them.
 * Messages never quote the Secret's content. Expiry is not checked: it depends on the clock, and the
 * translation must not; an expired certificate is the client's to refuse.
 */
export function checkSecret(secret: Secret): SecretCheck {
  if (secret.type !== TLS_SECRET_TYPE) {
    return { ok: false, problem: `has type ${secret.type ?? 'Opaque'}, not ${TLS_SECRET_TYPE}` };
  }
  const crt = field(secret, 'tls.crt');
  const key = field(secret, 'tls.key');
  if (crt === undefined || crt.trim() === '') return { ok: false, problem: 'has no tls.crt' };
  if (key === undefined || key.trim() === '') return { ok: false, problem: 'has no tls.key' };
  const blocks = crt.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) return { ok: false, problem: 'tls.crt holds no PEM certificate' };
  let leaf: X509Certificate | undefined;
  for (const [i, block] of blocks.entries()) {
    try {
      const cert = new X509Certificate(block);
      leaf ??= cert;
    } catch {
      return { ok: false, problem: `tls.crt: certificate ${i + 1} does not parse` };
    }
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    return { ok: false, problem: 'tls.key does not hold a PEM private key that parses' };
  }
  if (leaf === undefined || !leaf.checkPrivateKey(privateKey)) {
    return { ok: false, problem: 'tls.key does not match the certificate in tls.crt' };
  }
  const name = secretName(secret.metadata?.namespace ?? 'default', secret.metadata?.name ?? '');
  return { ok: true, secret: { name, certificateChain: crt, privateKey: key } };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** One key of a Secret, decoded: `stringData` as is, else `data` from base64 (undefined if it is not). */
function field(secret: Secret, key: string): string | undefined {
  const plain = secret.stringData?.[key];
  if (plain !== undefined) return plain;
  const encoded = secret.data?.[key];
  if (encoded === undefined) return undefined;
  const compact = encoded.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) return undefined;
  return Buffer.from(compact, 'base64').toString('utf8');
}
