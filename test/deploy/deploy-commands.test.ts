import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { BUNDLED_CHART } from '../../src/deploy/cli-options.js';
import { waitForRelease } from '../../src/deploy/wait-for-release.js';
import { runCli } from '../helpers/run-cli.js';
import {
  deployment,
  type FakeApi,
  seldonDeployment,
  startFakeApi,
  writeStandInHelm,
} from './fake-cluster.js';

const RELEASE_JSON = JSON.stringify({
  name: 'demo',
  namespace: 'models',
  version: 3,
  info: { status: 'deployed', description: 'Upgrade complete' },
  chart: { metadata: { name: 'gpt2-gateway', version: '0.1.0' } },
});
const SELECTOR = `labelSelector=${encodeURIComponent('app.kubernetes.io/instance=demo')}`;

const deploy = (args: string[]) => runCli(['deploy', ...args]);
const status = (args: string[]) => runCli(['status', ...args]);
const undeploy = (args: string[]) => runCli(['undeploy', ...args]);

const apis: FakeApi[] = [];
after(async () => {
  for (const api of apis) await api.close();
});
async function fakeApi(handlers: Parameters<typeof startFakeApi>[0]): Promise<FakeApi> {
  const api = await startFakeApi(handlers);
  apis.push(api);
  return api;
}
function kubeConfigFor(api: FakeApi): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(api.kubeconfig);
  return kc;
}

test('deploy runs helm upgrade --install with the arguments as given, then waits for readiness', async () => {
  const helm = writeStandInHelm({ upgrade: { stdout: RELEASE_JSON } });
  const api = await fakeApi({
    deployments: () => [
      deployment('demo-gpt2-gateway', { want: 2, updated: 2, available: 2 }),
      // Seldon's own Deployment for Triton carries seldon-deployment-id and is judged via the SDep.
      deployment('demo-triton-default-0-triton', {
        want: 1,
        updated: 1,
        available: 0,
        labels: { 'seldon-deployment-id': 'demo-triton' },
      }),
    ],
    seldon: () => [seldonDeployment('demo-triton', 'Available')],
  });
  const {
    code: result,
    stdout,
    stderr,
  } = await deploy([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
    '-f',
    'my values.yaml',
    '--set',
    'image.tag=1.2.3; rm -rf /',
    '--chart',
    './chart',
  ]);
  assert.equal(result, 0, stderr);
  assert.deepEqual(helm.calls(), [
    [
      'upgrade',
      '--install',
      'demo',
      './chart',
      '--namespace',
      'models',
      '--values',
      'my values.yaml',
      '--set',
      'image.tag=1.2.3; rm -rf /',
      '-o',
      'json',
      '--kubeconfig',
      api.kubeconfig,
    ],
  ]);
  assert.deepEqual(JSON.parse(stdout), {
    release: 'demo',
    namespace: 'models',
    revision: 3,
    ready: true,
  });
  assert.match(stderr, /release demo revision 3 in models: deployed/);
  assert.match(stderr, /SeldonDeployment\/demo-triton: Available/);
  assert.match(stderr, /Deployment\/demo-gpt2-gateway: 2\/2 updated, 2\/2 available/);
  assert.doesNotMatch(stderr, /demo-triton-default-0-triton/);
  assert.match(stderr, /release demo is ready/);
  assert.deepEqual(api.requests.sort(), [
    `/apis/apps/v1/namespaces/models/deployments?${SELECTOR}`,
    `/apis/machinelearning.seldon.io/v1/namespaces/models/seldondeployments?${SELECTOR}`,
  ]);
});

test('deploy defaults to the chart bundled with the package', async () => {
  const helm = writeStandInHelm({ upgrade: { stdout: RELEASE_JSON } });
  const api = await fakeApi({ deployments: () => [], seldon: () => [] });
  const { code: result } = await deploy([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
    '--no-wait',
    '-n',
    'other',
  ]);
  assert.equal(result, 0);
  assert.deepEqual(helm.calls()[0]?.slice(0, 6), [
    'upgrade',
    '--install',
    'demo',
    BUNDLED_CHART,
    '--namespace',
    'other',
  ]);
  assert.ok(BUNDLED_CHART.endsWith('/chart'));
  assert.deepEqual(api.requests, [], '--no-wait must not touch the API');
});

test('waitForRelease reports each change and returns once the SeldonDeployment is Available and the rollout is done', async () => {
  const api = await fakeApi({
    seldon: (n) => [seldonDeployment('demo-triton', n < 2 ? 'Creating' : 'Available')],
    deployments: (n) => [
      n === 0
        ? deployment('demo-gpt2-gateway', {
            want: 2,
            updated: 0,
            available: 0,
            generation: 2,
            observed: 1,
          })
        : n === 1
          ? deployment('demo-gpt2-gateway', {
              want: 2,
              updated: 2,
              available: 1,
              generation: 2,
              observed: 2,
            })
          : deployment('demo-gpt2-gateway', {
              want: 2,
              updated: 2,
              available: 2,
              generation: 2,
              observed: 2,
            }),
    ],
  });
  const lines: string[] = [];
  const objects = await waitForRelease(kubeConfigFor(api), {
    namespace: 'models',
    release: 'demo',
    timeoutMs: 60_000,
    pollMs: 1,
    onProgress: (l) => lines.push(l),
  });
  assert.deepEqual(lines, [
    'SeldonDeployment/demo-triton: Creating',
    'Deployment/demo-gpt2-gateway: 0/2 updated, 0/2 available',
    'Deployment/demo-gpt2-gateway: 2/2 updated, 1/2 available',
    'SeldonDeployment/demo-triton: Available',
    'Deployment/demo-gpt2-gateway: 2/2 updated, 2/2 available',
  ]);
  assert.deepEqual(
    objects.map((o) => [o.kind, o.name, o.phase]),
    [
      ['SeldonDeployment', 'demo-triton', 'ready'],
      ['Deployment', 'demo-gpt2-gateway', 'ready'],
    ],
  );
});

test('an old generation is not a finished rollout even when the counts match', async () => {
  const api = await fakeApi({
    seldon: () => [],
    deployments: () => [
      deployment('demo-gpt2-gateway', {
        want: 1,
        updated: 1,
        available: 1,
        generation: 5,
        observed: 4,
      }),
    ],
  });
  await assert.rejects(
    waitForRelease(kubeConfigFor(api), {
      namespace: 'models',
      release: 'demo',
      timeoutMs: 1,
      pollMs: 1,
    }),
    {
      name: 'WaitError',
      message:
        'timed out after 0 s waiting for Deployment/demo-gpt2-gateway (1/1 updated, 1/1 available)',
    },
  );
});

test("deploy fails with Seldon's description when the SeldonDeployment fails", async () => {
  const helm = writeStandInHelm({ upgrade: { stdout: RELEASE_JSON } });
  const api = await fakeApi({
    deployments: () => [deployment('demo-gpt2-gateway', { want: 1, updated: 1, available: 1 })],
    seldon: () => [
      seldonDeployment(
        'demo-triton',
        'Failed',
        'Deployment demo-triton-default-0-triton failed: Insufficient nvidia.com/gpu',
      ),
    ],
  });
  const { code: result, stderr } = await deploy([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
  ]);
  assert.equal(result, 1);
  assert.match(
    stderr,
    /^gpt2-gateway deploy: SeldonDeployment\/demo-triton failed: Failed: Deployment demo-triton-default-0-triton failed: Insufficient nvidia.com\/gpu$/m,
  );
});

test('deploy says to install Seldon Core when the cluster lacks the SeldonDeployment CRD', async () => {
  const helm = writeStandInHelm({ upgrade: { stdout: RELEASE_JSON } });
  const api = await fakeApi({ deployments: () => [], seldon: () => null });
  const { code: result, stderr } = await deploy([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
  ]);
  assert.equal(result, 1);
  assert.match(
    stderr,
    /no SeldonDeployment resource: install Seldon Core v1, or deploy with --set seldon.enabled=false/,
  );
});

test('deploy times out naming what it still waits for', async () => {
  const helm = writeStandInHelm({ upgrade: { stdout: RELEASE_JSON } });
  const api = await fakeApi({
    deployments: () => [deployment('demo-gpt2-gateway', { want: 2, updated: 1, available: 0 })],
    seldon: () => [seldonDeployment('demo-triton', 'Creating')],
  });
  const { code: result, stderr } = await deploy([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
    '--timeout',
    '10ms',
  ]);
  assert.equal(result, 1);
  assert.match(
    stderr,
    /gpt2-gateway deploy: timed out after 0 s waiting for SeldonDeployment\/demo-triton \(Creating\), Deployment\/demo-gpt2-gateway \(1\/2 updated, 0\/2 available\)\n$/,
  );
});

test("deploy reports helm's own error line and exit status", async () => {
  const helm = writeStandInHelm({
    upgrade: {
      stderr: "Error: UPGRADE FAILED: values don't meet the specifications of the schema(s)\n",
      code: 1,
    },
  });
  const api = await fakeApi({ deployments: () => [], seldon: () => [] });
  const { code: result, stderr } = await deploy([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
  ]);
  assert.equal(result, 1);
  assert.equal(
    stderr,
    "gpt2-gateway deploy: helm upgrade failed: Error: UPGRADE FAILED: values don't meet the specifications of the schema(s)\n",
  );
});

test('deploy names a missing helm binary and rejects bad flags and durations', async () => {
  const api = await fakeApi({ deployments: () => [], seldon: () => [] });
  let r = await deploy(['--helm', '/nonexistent/helm', '--kubeconfig', api.kubeconfig]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "gpt2-gateway deploy: cannot run '/nonexistent/helm': not found (install helm or pass --helm PATH)\n",
  );
  r = await deploy(['--frobnicate']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^gpt2-gateway deploy: Unknown option '--frobnicate'/);
  r = await deploy(['--timeout', 'soon', '--kubeconfig', api.kubeconfig]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    "gpt2-gateway deploy: --timeout 'soon' is not a duration: use e.g. 500ms, 30s, 15m or 1h\n",
  );
  r = await deploy(['--release', 'Bad_Name', '--kubeconfig', api.kubeconfig]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--release 'Bad_Name' is not a valid release name/);
  r = await deploy(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: gpt2-gateway deploy/);
});

test('status prints the release and each object, and exits 0 only when all are ready', async () => {
  const helm = writeStandInHelm({ status: { stdout: RELEASE_JSON } });
  let ready = false;
  const api = await fakeApi({
    deployments: () => [
      deployment('demo-gpt2-gateway', { want: 2, updated: 2, available: ready ? 2 : 1 }),
    ],
    seldon: () => [seldonDeployment('demo-triton', 'Available')],
  });
  let r = await status(['--release', 'demo', '--helm', helm.path, '--kubeconfig', api.kubeconfig]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stdout,
    'release   demo (gpt2-gateway-0.1.0) revision 3 in models: deployed\n' +
      'ready       SeldonDeployment/demo-triton: Available\n' +
      'progressing Deployment/demo-gpt2-gateway: 2/2 updated, 1/2 available\n',
  );
  ready = true;
  r = await status([
    '--release',
    'demo',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
    '--json',
  ]);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), {
    release: {
      name: 'demo',
      namespace: 'models',
      revision: 3,
      status: 'deployed',
      description: 'Upgrade complete',
      chart: 'gpt2-gateway-0.1.0',
    },
    objects: [
      { kind: 'SeldonDeployment', name: 'demo-triton', phase: 'ready', detail: 'Available' },
      {
        kind: 'Deployment',
        name: 'demo-gpt2-gateway',
        phase: 'ready',
        detail: '2/2 updated, 2/2 available',
      },
    ],
    ready: true,
  });
  assert.deepEqual(helm.calls()[0], [
    'status',
    'demo',
    '--namespace',
    'models',
    '-o',
    'json',
    '--kubeconfig',
    api.kubeconfig,
  ]);
});

test('status and undeploy say so when the release does not exist', async () => {
  const helm = writeStandInHelm({ status: { stderr: 'Error: release: not found\n', code: 1 } });
  const api = await fakeApi({ deployments: () => [], seldon: () => [] });
  for (const [name, cmd] of [
    ['status', status],
    ['undeploy', undeploy],
  ] as const) {
    const r = await cmd(['--release', 'demo', '--helm', helm.path, '--kubeconfig', api.kubeconfig]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `gpt2-gateway ${name}: release demo not found in namespace models\n`);
  }
  assert.deepEqual(
    helm.calls().map((c) => c[0]),
    ['status', 'status'],
  );
});

test('undeploy runs helm uninstall and points at the kept PersistentVolume', async () => {
  const helm = writeStandInHelm({
    status: { stdout: RELEASE_JSON },
    uninstall: { stdout: 'release "demo" uninstalled\n' },
  });
  const api = await fakeApi({ deployments: () => [], seldon: () => [] });
  const r = await undeploy([
    '--release',
    'demo',
    '-n',
    'prod',
    '--helm',
    helm.path,
    '--kubeconfig',
    api.kubeconfig,
  ]);
  assert.equal(r.code, 0);
  assert.deepEqual(helm.calls()[1], [
    'uninstall',
    'demo',
    '--namespace',
    'prod',
    '--kubeconfig',
    api.kubeconfig,
  ]);
  assert.equal(
    r.stderr,
    'release demo uninstalled from prod; kept PersistentVolumes: kubectl get pv -l app.kubernetes.io/instance=demo\n',
  );
});
