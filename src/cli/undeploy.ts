import { parseArgs } from 'node:util';
import { COMMON_HELP, COMMON_OPTIONS, connect } from '../deploy/cli-options.js';
import { runCommand } from './command.js';

const HELP = `Usage: gpt2-gateway undeploy [options]

Uninstalls the Helm release. The model volume's claim and PersistentVolume are kept on purpose
(helm.sh/resource-policy: keep) so the blob data and its binding survive and a reinstall of the
release adopts them; delete them yourself, the claim first, with
  kubectl delete pvc,pv -l app.kubernetes.io/instance=<release>

Options:
${COMMON_HELP}
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(
    'undeploy',
    HELP,
    (args) => parse(args).values,
    argv,
    async (v) => {
      const cluster = connect(v);
      if ((await cluster.helm.status(cluster.release, cluster.namespace)) === null) {
        process.stderr.write(
          `gpt2-gateway undeploy: release ${cluster.release} not found in namespace ${cluster.namespace}\n`,
        );
        return 1;
      }
      await cluster.helm.uninstall(cluster.release, cluster.namespace);
      process.stderr.write(
        `release ${cluster.release} uninstalled from ${cluster.namespace}; kept PersistentVolumes: kubectl get pv -l app.kubernetes.io/instance=${cluster.release}\n`,
      );
      return 0;
    },
  );
}

function parse(argv: string[]) {
  return parseArgs({ args: argv, strict: true, allowPositionals: false, options: COMMON_OPTIONS });
}
