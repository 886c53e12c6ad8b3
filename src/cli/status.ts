import { parseArgs } from 'node:util';
import { COMMON_HELP, COMMON_OPTIONS, connect } from '../deploy/cli-options.js';
import { readReleaseState } from '../deploy/release-state.js';
import { runCommand } from './command.js';

const HELP = `Usage: gpt2-gateway status [options]

Shows the Helm release and the state of its SeldonDeployment and gateway Deployment.
Exits 0 when everything is ready, 1 otherwise.

Options:
  --json               print one JSON object instead of text
${COMMON_HELP}
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(
    'status',
    HELP,
    (args) => parse(args).values,
    argv,
    async (v) => {
      const cluster = connect(v);
      const release = await cluster.helm.status(cluster.release, cluster.namespace);
      if (release === null) {
        process.stderr.write(
          `gpt2-gateway status: release ${cluster.release} not found in namespace ${cluster.namespace}\n`,
        );
        return 1;
      }
      const state = await readReleaseState(cluster.kubeConfig, cluster.namespace, cluster.release);
      const ready =
        release.status === 'deployed' && state.objects.every((o) => o.phase === 'ready');
      if (v.json === true) {
        process.stdout.write(`${JSON.stringify({ release, objects: state.objects, ready })}\n`);
      } else {
        const lines = [
          `release   ${release.name} (${release.chart}) revision ${release.revision} in ${cluster.namespace}: ${release.status}`,
          ...state.objects.map((o) => `${o.phase.padEnd(11)} ${o.kind}/${o.name}: ${o.detail}`),
        ];
        if (state.seldonMissing)
          lines.push(
            'note      the cluster has no SeldonDeployment resource (Seldon Core not installed)',
          );
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      return ready ? 0 : 1;
    },
  );
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: { ...COMMON_OPTIONS, json: { type: 'boolean' } },
  });
}
