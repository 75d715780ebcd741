// Test PKI for the Kubernetes harness: a CA, certificates it signs, and a service-account key pair.
// Keys come from Node's native RSA generator (fast); node-forge builds and signs the certificates.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import forge from 'node-forge';

export interface KeyPair {
  /** PKCS#1 PEM. */
  readonly privateKeyPem: string;
  /** SPKI PEM. */
  readonly publicKeyPem: string;
}

export interface CertifiedKey {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface TestCa extends CertifiedKey {
  /** Signs a certificate for a server or a client with this CA. */
  issue(opts: IssueOptions): CertifiedKey;
}

export interface IssueOptions {
  readonly commonName: string;
  /** Subject organisations: Kubernetes reads them as a client certificate's groups. */
  readonly organizations?: readonly string[];
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly usage: 'server' | 'client';
}

const VALID_MS = 7 * 24 * 3600_000;

export function rsaKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return { privateKeyPem: privateKey, publicKeyPem: publicKey };
}

/** A positive serial number of 16 random bytes, as hex (the top bit cleared so it is not negative). */
function serial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f;
  return b.toString('hex');
}

function newCertificate(keys: KeyPair, subject: forge.pki.CertificateField[]): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serial();
  // A minute in the past, so a clock a little behind the test process still accepts it.
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + VALID_MS);
  cert.setSubject(subject);
  return cert;
}

/** A self-signed CA named `commonName`. */
export function createCa(commonName: string): TestCa {
  const keys = rsaKeyPair();
  const caKey = forge.pki.privateKeyFromPem(keys.privateKeyPem);
  const subject = [{ name: 'commonName', value: commonName }];
  const ca = newCertificate(keys, subject);
  ca.setIssuer(subject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKey, forge.md.sha256.create());

  return {
    certPem: forge.pki.certificateToPem(ca),
    keyPem: keys.privateKeyPem,
    issue(opts) {
      const leafKeys = rsaKeyPair();
      const leaf = newCertificate(leafKeys, [
        { name: 'commonName', value: opts.commonName },
        ...(opts.organizations ?? []).map((o) => ({ name: 'organizationName', value: o })),
      ]);
      leaf.setIssuer(ca.subject.attributes);
      const altNames = [
        ...(opts.dnsNames ?? []).map((value) => ({ type: 2, value })),
        ...(opts.ipAddresses ?? []).map((ip) => ({ type: 7, ip })),
      ];
      leaf.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        opts.usage === 'server'
          ? { name: 'extKeyUsage', serverAuth: true }
          : { name: 'extKeyUsage', clientAuth: true },
        ...(altNames.length > 0 ? [{ name: 'subjectAltName', altNames }] : []),
        { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
      ]);
      leaf.sign(caKey, forge.md.sha256.create());
      return { certPem: forge.pki.certificateToPem(leaf), keyPem: leafKeys.privateKeyPem };
    },
  };
}
