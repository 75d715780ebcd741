import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { errorMessage, KubeApiError, KubeCode } from './kubeCodes.js';

/**
 * The KubeConfig for `--kubeconfig PATH`; without one, the in-cluster service account when running in a
 * Pod, else `$KUBECONFIG` or `~/.kube/config` (client-node's default order).
 */
export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (file !== undefined) {
      if (!existsSync(file)) throw new Error(`${file} does not exist`);
      kc.loadFromFile(file);
    } else if ((process.env['KUBERNETES_SERVICE_HOST'] ?? '') !== '') {
      kc.loadFromCluster();
    } else {
      kc.loadFromDefault();
    }
  } catch (e) {
    throw new KubeApiError(0, undefined, `cannot load the kubeconfig: ${errorMessage(e)}`, {
      code: KubeCode.Config,
      cause: e,
    });
  }
  if (kc.getCurrentCluster() === null) {
    throw new KubeApiError(
      0,
      undefined,
      `the kubeconfig${file === undefined ? '' : ` ${file}`} has no current cluster (set current-context)`,
      { code: KubeCode.Config },
    );
  }
  return kc;
}
