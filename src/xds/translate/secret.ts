import type { IrSecret } from '../../model/ir.js';
import { TypeUrl } from '../proto.js';
import type { ResourceSpec } from '../resource.js';

/** One IR secret → an SDS Secret holding a certificate chain and its key, inline (never on disk). */
export function translateSecret(s: IrSecret): ResourceSpec {
  return {
    typeUrl: TypeUrl.Secret,
    name: s.name,
    message: {
      name: s.name,
      tlsCertificate: {
        certificateChain: { inlineString: s.certificateChain },
        privateKey: { inlineString: s.privateKey },
      },
    },
    deps: [],
    children: [],
  };
}
