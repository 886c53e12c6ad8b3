/**
 * The options deploy, status and undeploy share, and the objects they build from them: a Helm
 * wrapper and a KubeConfig. The CLI is the only place that decides these from flags.
 */
import { fileURLToPath } from 'node:url';
import type { ParseArgsConfig } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Helm } from './helm.js';

export const DEFAULT_RELEASE = 'gpt2-gateway';
/** The chart that ships with this package (dist/src/deploy/ → chart/). */
export const BUNDLED_CHART = fileURLToPath(new URL('../../../chart', import.meta.url));

export const COMMON_OPTIONS = {
  release: { type: 'string', default: DEFAULT_RELEASE },
  namespace: { type: 'string', short: 'n' },
  helm: { type: 'string' },
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const COMMON_HELP = `  --release NAME       Helm release name (default ${DEFAULT_RELEASE})
  -n, --namespace NS   namespace (default: the kubeconfig context's, else "default")
  --helm PATH          helm executable (default: helm on PATH)
  --kubeconfig PATH    kubeconfig file (default: $KUBECONFIG or ~/.kube/config)
  --context NAME       kubeconfig context (default: the current one)
  -h, --help           show this help`;

export interface CommonValues {
  release: string;
  namespace?: string | undefined;
  helm?: string | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
}

export interface Cluster {
  helm: Helm;
  kubeConfig: KubeConfig;
  namespace: string;
  release: string;
}

export function connect(values: CommonValues): Cluster {
  const kubeConfig = new KubeConfig();
  if (values.kubeconfig === undefined) kubeConfig.loadFromDefault();
  else kubeConfig.loadFromFile(values.kubeconfig);
  if (values.context !== undefined) kubeConfig.setCurrentContext(values.context);
  const contextNamespace = kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace;
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(values.release) || values.release.length > 53) {
    throw new Error(
      `--release '${values.release}' is not a valid release name (lowercase letters, digits and '-', at most 53 characters)`,
    );
  }
  return {
    helm: new Helm({
      binary: values.helm,
      kubeconfig: values.kubeconfig,
      kubeContext: values.context,
    }),
    kubeConfig,
    namespace: values.namespace ?? contextNamespace ?? 'default',
    release: values.release,
  };
}
