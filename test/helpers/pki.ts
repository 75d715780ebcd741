import forge from 'node-forge';

/**
 * Test TLS material from node-forge: a CA, and leaf certificates it signs for given DNS names. Keys are
 * 2048-bit RSA (forge's fastest safe choice); generation takes ~100 ms each, so reuse them in a file.
 */
export interface TestCa {
  readonly certPem: string;
  issue(names: readonly string[], opts?: { notAfter?: Date }): TestCert;
}

export interface TestCert {
  readonly certPem: string;
  readonly keyPem: string;
  /** For a kubernetes.io/tls Secret's data. */
  readonly secretData: { readonly 'tls.crt': string; readonly 'tls.key': string };
}

let serial = 1;

export function createTestCa(commonName = 'Skein Test CA'): TestCa {
  const keys = forge.pki.rsa.generateKeyPair(2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = (serial++).toString(16).padStart(2, '0');
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  return {
    certPem,
    issue(names, opts) {
      const k = forge.pki.rsa.generateKeyPair(2048);
      const c = forge.pki.createCertificate();
      c.publicKey = k.publicKey;
      c.serialNumber = (serial++).toString(16).padStart(2, '0');
      c.validity.notBefore = new Date(Date.now() - 60_000);
      c.validity.notAfter = opts?.notAfter ?? new Date(Date.now() + 24 * 3600_000);
      c.setSubject([{ name: 'commonName', value: names[0] ?? 'localhost' }]);
      c.setIssuer(subject);
      c.setExtensions([
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
        { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
        { name: 'subjectAltName', altNames: names.map((value) => ({ type: 2, value })) },
      ]);
      c.sign(keys.privateKey, forge.md.sha256.create());
      const leafPem = forge.pki.certificateToPem(c);
      const keyPem = forge.pki.privateKeyToPem(k.privateKey);
      return {
        certPem: leafPem,
        keyPem,
        secretData: {
          'tls.crt': Buffer.from(leafPem).toString('base64'),
          'tls.key': Buffer.from(keyPem).toString('base64'),
        },
      };
    },
  };
}

/** A kubernetes.io/tls Secret as YAML. */
export function tlsSecretYaml(name: string, cert: TestCert, namespace = 'default'): string {
  return `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: ${namespace} }
type: kubernetes.io/tls
data:
  tls.crt: ${cert.secretData['tls.crt']}
  tls.key: ${cert.secretData['tls.key']}
`;
}
