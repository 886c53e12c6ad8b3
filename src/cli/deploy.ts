import { parseArgs } from 'node:util';
import { BUNDLED_CHART, COMMON_HELP, COMMON_OPTIONS, connect } from '../deploy/cli-options.js';
import { waitForRelease } from '../deploy/wait-for-release.js';
import { runCommand } from './command.js';
import { parseDuration } from './duration.js';

const DEFAULT_TIMEOUT = '15m';

const HELP = `Usage: gpt2-gateway deploy [options]

Installs or upgrades the Helm release (helm upgrade --install), then waits until every
SeldonDeployment of the release is Available and the gateway Deployment has rolled out.

Options:
  --chart DIR          chart to install (default: the chart in this package)
  -f, --values FILE    values file (repeatable)
  --set KEY=VALUE      value override (repeatable)
  --create-namespace   create the namespace if missing
  --timeout DURATION   how long to wait for readiness (default ${DEFAULT_TIMEOUT})
  --no-wait            return once helm has applied the release
${COMMON_HELP}
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand(
    'deploy',
    HELP,
    (args) => parse(args).values,
    argv,
    async (v) => {
      const timeoutMs = parseDuration(v.timeout, '--timeout');
      const cluster = connect(v);
      const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
      const release = await cluster.helm.upgradeInstall(cluster.release, v.chart ?? BUNDLED_CHART, {
        namespace: cluster.namespace,
        valuesFiles: v.values ?? [],
        set: v.set ?? [],
        createNamespace: v['create-namespace'] === true,
      });
      log(
        `release ${release.name} revision ${release.revision} in ${cluster.namespace}: ${release.status}`,
      );
      if (v['no-wait'] !== true) {
        await waitForRelease(cluster.kubeConfig, {
          namespace: cluster.namespace,
          release: cluster.release,
          timeoutMs,
          onProgress: log,
        });
        log(`release ${release.name} is ready`);
      }
      process.stdout.write(
        `${JSON.stringify({ release: release.name, namespace: cluster.namespace, revision: release.revision, ready: v['no-wait'] !== true })}\n`,
      );
      return 0;
    },
  );
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      ...COMMON_OPTIONS,
      chart: { type: 'string' },
      values: { type: 'string', short: 'f', multiple: true },
      set: { type: 'string', multiple: true },
      'create-namespace': { type: 'boolean' },
      timeout: { type: 'string', default: DEFAULT_TIMEOUT },
      'no-wait': { type: 'boolean' },
    },
  });
}
