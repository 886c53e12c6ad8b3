import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { HelmError } from '../../src/deploy/helm.js';
import { at, CHART, helm, type K8sObject, kinds, one, ROOT, render } from './render.js';

const CI_VALUES = readdirSync(`${CHART}/ci`)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function gatewayEnv(objects: K8sObject[]): Record<string, string> {
  return at(one(objects, 'ConfigMap', 'gpt2-gateway'), 'data') as Record<string, string>;
}
function podSpec(objects: K8sObject[]): unknown {
  return at(one(objects, 'Deployment', 'gpt2-gateway'), 'spec', 'template', 'spec');
}
function dockerfileUser(): string {
  const m = /^USER (\S+)$/m.exec(readFileSync(`${ROOT}Dockerfile`, 'utf8'));
  assert.ok(m?.[1] !== undefined, 'Dockerfile has a USER line');
  return m[1];
}

test('helm lint --strict passes with the defaults and every CI values file', async () => {
  assert.deepEqual(CI_VALUES, [
    'embedded-values.yaml',
    'everything-on-values.yaml',
    'existing-claim-values.yaml',
    'existing-seldon-values.yaml',
    'existing-triton-values.yaml',
  ]);
  await helm().lint(CHART);
  for (const file of CI_VALUES) await helm().lint(CHART, [`${CHART}/ci/${file}`]);
});

test('the gateway accepts the environment the chart gives it, for every values file', async () => {
  const seen: Record<string, unknown> = {};
  for (const file of [undefined, ...CI_VALUES]) {
    const env = gatewayEnv(await render({ valuesFiles: file === undefined ? [] : [file] }));
    const config = loadConfig(env);
    seen[file ?? 'defaults'] = {
      backend: config.backend,
      url: config.triton.url,
      wire: config.triton.wire,
      seldon: config.triton.seldonDeployment,
      maxBatchSize: config.triton.maxBatchSize,
    };
  }
  assert.deepEqual(seen, {
    defaults: {
      backend: 'triton',
      url: undefined,
      wire: 'binary',
      seldon: 'gpt2-gateway-triton',
      maxBatchSize: undefined,
    },
    'embedded-values.yaml': {
      backend: 'embedded',
      url: undefined,
      wire: 'binary',
      seldon: undefined,
      maxBatchSize: undefined,
    },
    'everything-on-values.yaml': {
      backend: 'triton',
      url: undefined,
      wire: 'binary',
      seldon: 'gpt2-gateway-triton',
      maxBatchSize: undefined,
    },
    'existing-claim-values.yaml': {
      backend: 'triton',
      url: undefined,
      wire: 'binary',
      seldon: 'gpt2-gateway-triton',
      maxBatchSize: undefined,
    },
    'existing-seldon-values.yaml': {
      backend: 'triton',
      url: undefined,
      wire: 'json',
      seldon: 'gpt2gpu',
      maxBatchSize: 8,
    },
    'existing-triton-values.yaml': {
      backend: 'triton',
      url: 'http://triton.inference.svc:8000',
      wire: 'binary',
      seldon: undefined,
      maxBatchSize: undefined,
    },
  });
});

test('the defaults render the gateway and the whole model side, nothing optional', async () => {
  const objects = await render();
  assert.deepEqual(kinds(objects), [
    'ConfigMap/gpt2-gateway',
    'Deployment/gpt2-gateway',
    'PersistentVolume/default-gpt2-gateway-models',
    'PersistentVolumeClaim/gpt2-gateway-models',
    'PodDisruptionBudget/gpt2-gateway',
    'Role/gpt2-gateway',
    'RoleBinding/gpt2-gateway',
    'SeldonDeployment/gpt2-gateway-triton',
    'Service/gpt2-gateway',
    'ServiceAccount/gpt2-gateway',
  ]);
});

test('the gateway pod is non-root on a read-only root filesystem with probes on /healthz and /readyz', async () => {
  const objects = await render();
  const pod = podSpec(objects);
  const container = at(pod, 'containers', 0);
  assert.equal(at(container, 'image'), 'gpt2-gateway:0.1.0');
  assert.deepEqual(at(pod, 'securityContext'), {
    runAsNonRoot: true,
    runAsUser: 8888,
    runAsGroup: 8888,
    fsGroup: 8888,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(dockerfileUser(), '8888:8888', 'the image runs as the uid the pod asks for');
  assert.deepEqual(at(container, 'securityContext'), {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  });
  assert.equal(at(container, 'livenessProbe', 'httpGet', 'path'), '/healthz');
  assert.equal(at(container, 'readinessProbe', 'httpGet', 'path'), '/readyz');
  assert.deepEqual(at(container, 'ports'), [
    { name: 'http', containerPort: 8080, protocol: 'TCP' },
  ]);
  // Writable places on a read-only root: /tmp and the model folder, both emptyDir by default.
  assert.deepEqual(at(container, 'volumeMounts'), [
    { name: 'tmp', mountPath: '/tmp' },
    { name: 'models', mountPath: '/models' },
  ]);
  assert.deepEqual(at(pod, 'volumes'), [
    { name: 'tmp', emptyDir: {} },
    { name: 'models', emptyDir: {} },
  ]);
  const annotations = at(one(objects, 'Deployment'), 'spec', 'template', 'metadata', 'annotations');
  assert.equal(at(annotations, 'prometheus.io/scrape'), 'true');
  assert.equal(at(annotations, 'prometheus.io/port'), '8080');
  assert.equal(at(annotations, 'prometheus.io/path'), '/metrics');
  assert.equal(at(one(objects, 'Service'), 'spec', 'ports', 0, 'targetPort'), 'http');
  // A terminating pod keeps serving until endpoints forget it, then drains on SIGTERM: the
  // preStop wait plus SHUTDOWN_TIMEOUT_MS must fit inside the grace period or completions are cut.
  assert.deepEqual(at(container, 'lifecycle'), {
    preStop: { exec: { command: ['sleep', '5'] } },
  });
  assert.ok(
    5_000 + Number(gatewayEnv(objects).SHUTDOWN_TIMEOUT_MS) <
      Number(at(pod, 'terminationGracePeriodSeconds')) * 1000,
  );
  const noHook = await render({ set: ['preStopSleepSeconds=0'] });
  assert.equal(
    (
      at(one(noHook, 'Deployment'), 'spec', 'template', 'spec', 'containers', 0) as Record<
        string,
        unknown
      >
    ).lifecycle,
    undefined,
  );
});

test('checksum/config changes with the configuration and only with it', async () => {
  const checksum = async (set: string[]) =>
    at(
      one(await render({ set }), 'Deployment'),
      'spec',
      'template',
      'metadata',
      'annotations',
      'checksum/config',
    );
  const base = await checksum([]);
  assert.match(String(base), /^[0-9a-f]{64}$/);
  assert.notEqual(await checksum(['config.maxQueue=65']), base);
  assert.equal(await checksum(['replicaCount=5']), base);
});

test('the gateway is configured to find and follow its own SeldonDeployment', async () => {
  const objects = await render();
  const sdep = one(objects, 'SeldonDeployment');
  const predictor = at(sdep, 'spec', 'predictors', 0);
  const graph = at(predictor, 'graph', 'name');
  assert.deepEqual(gatewayEnv(objects), {
    HOST: '0.0.0.0',
    PORT: '8080',
    LOG_LEVEL: 'info',
    BACKEND: 'triton',
    TRUST_PROXY: 'false',
    MODEL_NAME: 'gpt2',
    MODEL_REPOSITORY: '/models',
    MAX_BATCH_SIZE: '8',
    MAX_QUEUE: '64',
    MAX_NEW_TOKENS_LIMIT: '512',
    DEFAULT_MAX_NEW_TOKENS: '16',
    RATE_LIMIT_MAX: '120',
    RATE_LIMIT_WINDOW_MS: '60000',
    BODY_LIMIT_BYTES: '65536',
    SHUTDOWN_TIMEOUT_MS: '30000',
    REQUEST_TIMEOUT_MS: '30000',
    KEEP_ALIVE_TIMEOUT_MS: '75000',
    MAX_CONNECTIONS: '1024',
    MAX_BATCH_TOTAL_TOKENS: '8192',
    // No TRITON_URL: the gateway finds Triton through the SeldonDeployment (binary wire:
    // <sdep>-<predictor>-<graph>:9000, see docs/triton-notes.md, 'Seldon Core v1 executor') and
    // follows its status for readiness.
    TRITON_WIRE: 'binary',
    TRITON_TIMEOUT_MS: '30000',
    TRITON_CONNECTIONS: '16',
    TRITON_HEALTH_INTERVAL_MS: '2000',
    TRITON_HEALTH_TIMEOUT_MS: '2000',
    TRITON_HEALTH_FAILURES: '2',
    SELDON_DEPLOYMENT: sdep.metadata.name,
    SELDON_NAMESPACE: 'default',
    SELDON_PREDICTOR: 'default',
    SELDON_GRAPH: String(graph),
  });
  // The Role lets the gateway's own ServiceAccount read exactly that SeldonDeployment.
  assert.deepEqual(at(one(objects, 'Role'), 'rules'), [
    {
      apiGroups: ['machinelearning.seldon.io'],
      resources: ['seldondeployments'],
      resourceNames: [sdep.metadata.name],
      verbs: ['get', 'list', 'watch'],
    },
  ]);
  const binding = one(objects, 'RoleBinding');
  assert.deepEqual(at(binding, 'roleRef'), {
    apiGroup: 'rbac.authorization.k8s.io',
    kind: 'Role',
    name: 'gpt2-gateway',
  });
  assert.deepEqual(at(binding, 'subjects'), [
    { kind: 'ServiceAccount', name: 'gpt2-gateway', namespace: 'default' },
  ]);
  assert.equal(
    at(podSpec(objects), 'serviceAccountName'),
    one(objects, 'ServiceAccount').metadata.name,
  );
});

test('the SeldonDeployment runs a settable Triton >= 21.11 on a GPU from the pvc:// model repository', async () => {
  const objects = await render();
  const sdep = one(objects, 'SeldonDeployment');
  assert.equal(sdep.apiVersion, 'machinelearning.seldon.io/v1');
  assert.equal(at(sdep, 'spec', 'protocol'), 'v2');
  assert.deepEqual(at(sdep, 'spec', 'annotations'), {
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': '8002',
    'prometheus.io/path': '/metrics',
    'seldon.io/rest-timeout': '60000',
  });
  const predictor = at(sdep, 'spec', 'predictors', 0);
  assert.deepEqual(at(predictor, 'graph'), {
    name: 'triton',
    implementation: 'TRITON_SERVER',
    modelUri: `pvc://${one(objects, 'PersistentVolumeClaim').metadata.name}/`,
    type: 'MODEL',
  });
  const spec = at(predictor, 'componentSpecs', 0, 'spec');
  const container = at(spec, 'containers', 0);
  assert.equal(
    at(container, 'name'),
    'triton',
    'the override merges only into the container named like the graph',
  );
  const image = String(at(container, 'image'));
  const tag = /^nvcr\.io\/nvidia\/tritonserver:(\d+)\.(\d+)-py3$/.exec(image);
  assert.ok(tag !== null, image);
  assert.ok(
    Number(tag[1]) * 100 + Number(tag[2]) >= 2111,
    `${image} has implicit state (>= 21.11)`,
  );
  assert.equal(at(container, 'resources', 'requests', 'nvidia.com/gpu'), 1);
  assert.equal(at(container, 'resources', 'limits', 'nvidia.com/gpu'), 1);
  assert.deepEqual(at(spec, 'tolerations'), [
    { key: 'sku', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' },
    { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
  ]);
  const withImage = one(
    await render({ set: ['seldon.triton.image=nvcr.io/nvidia/tritonserver:23.10-py3'] }),
    'SeldonDeployment',
  );
  assert.equal(
    at(withImage, 'spec', 'predictors', 0, 'componentSpecs', 0, 'spec', 'containers', 0, 'image'),
    'nvcr.io/nvidia/tritonserver:23.10-py3',
  );
});

test('the Blob CSI static volume takes its key from a Secret reference and mounts as the image user', async () => {
  const objects = await render();
  const pv = one(objects, 'PersistentVolume');
  const pvc = one(objects, 'PersistentVolumeClaim');
  assert.deepEqual(at(pv, 'spec'), {
    capacity: { storage: '10Gi' },
    accessModes: ['ReadWriteMany'],
    persistentVolumeReclaimPolicy: 'Retain',
    storageClassName: '',
    mountOptions: [
      '-o allow_other',
      '-o uid=8888',
      '-o gid=8888',
      '--file-cache-timeout-in-seconds=120',
    ],
    claimRef: { namespace: 'default', name: pvc.metadata.name },
    csi: {
      driver: 'blob.csi.azure.com',
      readOnly: false,
      volumeHandle: 'default-gpt2-gateway-models#gpt2-models',
      volumeAttributes: { containerName: 'gpt2-models' },
      nodeStageSecretRef: { name: 'azure-secret', namespace: 'default' },
    },
  });
  assert.equal(at(pv, 'metadata', 'annotations', 'helm.sh/resource-policy'), 'keep');
  assert.equal(dockerfileUser(), '8888:8888', 'blobfuse uid/gid = the image user');
  assert.deepEqual(at(pvc, 'spec'), {
    accessModes: ['ReadWriteMany'],
    storageClassName: '',
    volumeName: pv.metadata.name,
    resources: { requests: { storage: '10Gi' } },
  });
});

test('everything on: HPA, Ingress, NetworkPolicy, ServiceMonitor, model Job and Grafana dashboard', async () => {
  const objects = await render({ valuesFiles: ['everything-on-values.yaml'] });
  assert.deepEqual(kinds(objects), [
    'ConfigMap/gpt2-gateway',
    'ConfigMap/gpt2-gateway-dashboard',
    'Deployment/gpt2-gateway',
    'HorizontalPodAutoscaler/gpt2-gateway',
    'Ingress/gpt2-gateway',
    'Job/gpt2-gateway-model-build',
    'NetworkPolicy/gpt2-gateway',
    'PersistentVolume/default-gpt2-gateway-models',
    'PersistentVolumeClaim/gpt2-gateway-models',
    'PodDisruptionBudget/gpt2-gateway',
    'Role/gpt2-gateway',
    'RoleBinding/gpt2-gateway',
    'SeldonDeployment/gpt2-gateway-triton',
    'Service/gpt2-gateway',
    'ServiceAccount/gpt2-gateway',
    'ServiceMonitor/gpt2-gateway',
  ]);
  const deployment = one(objects, 'Deployment');
  assert.equal(at(deployment, 'spec', 'replicas'), undefined, 'the HPA owns the replica count');
  assert.equal(
    at(deployment, 'spec', 'template', 'spec', 'containers', 0, 'image'),
    'myacr.azurecr.io/gpt2-gateway:1.2.3',
  );
  assert.deepEqual(at(deployment, 'spec', 'template', 'spec', 'containers', 0, 'env'), [
    { name: 'API_KEY', valueFrom: { secretKeyRef: { name: 'gpt2-api', key: 'key' } } },
  ]);
  assert.deepEqual(at(one(objects, 'HorizontalPodAutoscaler'), 'spec', 'scaleTargetRef'), {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    name: 'gpt2-gateway',
  });
  assert.equal(at(one(objects, 'HorizontalPodAutoscaler'), 'spec', 'minReplicas'), 3);
  assert.deepEqual(at(one(objects, 'Ingress'), 'spec'), {
    ingressClassName: 'nginx',
    tls: [{ hosts: ['gpt2.example.com'], secretName: 'gpt2-tls' }],
    rules: [
      {
        host: 'gpt2.example.com',
        http: {
          paths: [
            {
              path: '/',
              pathType: 'Prefix',
              backend: { service: { name: 'gpt2-gateway', port: { name: 'http' } } },
            },
          ],
        },
      },
    ],
  });
  assert.deepEqual(at(one(objects, 'NetworkPolicy'), 'spec', 'ingress', 0), {
    ports: [{ port: 'http', protocol: 'TCP' }],
    from: [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
    ],
  });
  const monitor = one(objects, 'ServiceMonitor');
  assert.equal(at(monitor, 'metadata', 'labels', 'release'), 'kube-prometheus-stack');
  assert.deepEqual(at(monitor, 'spec', 'endpoints'), [
    { port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s' },
  ]);
  // The model path inside the claim reaches both Triton's modelUri and the Job's mount.
  const sdep = one(objects, 'SeldonDeployment');
  assert.equal(
    at(sdep, 'spec', 'predictors', 0, 'graph', 'modelUri'),
    'pvc://gpt2-gateway-models/repository',
  );
  assert.equal(
    at(sdep, 'spec', 'predictors', 0, 'componentSpecs', 0, 'spec', 'containers', 0, 'image'),
    'nvcr.io/nvidia/tritonserver:24.05-py3',
  );
  assert.deepEqual(at(one(objects, 'PersistentVolume'), 'spec', 'csi', 'volumeAttributes'), {
    containerName: 'gpt2-models',
    storageAccount: 'gpt2store',
    resourceGroup: 'gpt2-rg',
  });
  const job = at(one(objects, 'Job'), 'spec', 'template', 'spec');
  assert.deepEqual(at(job, 'initContainers', 0, 'args'), [
    'model',
    'pull',
    'gpt2',
    '--dir',
    '/work/weights',
  ]);
  assert.deepEqual(at(job, 'containers', 0, 'command'), ['node', '/app/dist/src/cli.js']);
  assert.deepEqual(at(job, 'containers', 0, 'args'), [
    'model',
    'build',
    '--weights',
    '/work/weights',
    '--variant',
    'next-token',
    '--repo',
    '/repository',
    '--name',
    'gpt2',
    // The image is tritonserver:24.05-py3: the build refuses what that release cannot load.
    '--triton',
    '24.05',
  ]);
  assert.deepEqual(at(job, 'containers', 0, 'volumeMounts', 0), {
    name: 'repository',
    mountPath: '/repository',
    subPath: 'repository',
  });
  assert.deepEqual(at(job, 'volumes', 0), {
    name: 'repository',
    persistentVolumeClaim: { claimName: 'gpt2-gateway-models' },
  });
  assert.equal(at(job, 'containers', 0, 'securityContext', 'readOnlyRootFilesystem'), true);
  const dashboard = one(objects, 'ConfigMap', 'gpt2-gateway-dashboard');
  assert.equal(at(dashboard, 'metadata', 'labels', 'grafana_dashboard'), '1');
  const json = JSON.parse(String(at(dashboard, 'data', 'gpt2-gateway.json'))) as { uid: string };
  assert.deepEqual(json, JSON.parse(readFileSync(`${CHART}/files/grafana-dashboard.json`, 'utf8')));
  assert.equal(json.uid, 'gpt2-gateway');
});

test('an existing Triton: no volume, no SeldonDeployment, no Role; the gateway gets the URL', async () => {
  const objects = await render({ valuesFiles: ['existing-triton-values.yaml'] });
  assert.deepEqual(kinds(objects), [
    'ConfigMap/gpt2-gateway',
    'Deployment/gpt2-gateway',
    'PodDisruptionBudget/gpt2-gateway',
    'Service/gpt2-gateway',
    'ServiceAccount/gpt2-gateway',
  ]);
  const env = gatewayEnv(objects);
  assert.equal(env.TRITON_URL, 'http://triton.inference.svc:8000');
  assert.equal(env.TRITON_WIRE, 'binary');
  assert.equal(env.SELDON_DEPLOYMENT, undefined);
});

test('an existing SeldonDeployment found by name: JSON wire and a Role for that one object', async () => {
  const objects = await render({ valuesFiles: ['existing-seldon-values.yaml'] });
  assert.deepEqual(kinds(objects), [
    'ConfigMap/gpt2-gateway',
    'Deployment/gpt2-gateway',
    'PodDisruptionBudget/gpt2-gateway',
    'Role/gpt2-gateway',
    'RoleBinding/gpt2-gateway',
    'Service/gpt2-gateway',
    'ServiceAccount/gpt2-gateway',
  ]);
  const env = gatewayEnv(objects);
  assert.equal(env.TRITON_WIRE, 'json');
  assert.equal(env.TRITON_URL, undefined);
  assert.equal(env.SELDON_DEPLOYMENT, 'gpt2gpu');
  assert.equal(env.TRITON_MAX_BATCH_SIZE, '8');
  assert.equal(env.SELDON_NAMESPACE, 'default');
  assert.equal(env.SELDON_PREDICTOR, undefined);
  assert.deepEqual(at(one(objects, 'Role'), 'rules', 0, 'resourceNames'), ['gpt2gpu']);
});

test('an existing claim: no PV or PVC, and Triton reads the given folder of that claim', async () => {
  const objects = await render({ valuesFiles: ['existing-claim-values.yaml'] });
  assert.ok(
    !objects.some((o) => o.kind === 'PersistentVolume' || o.kind === 'PersistentVolumeClaim'),
  );
  assert.equal(
    at(one(objects, 'SeldonDeployment'), 'spec', 'predictors', 0, 'graph', 'modelUri'),
    'pvc://gpt2-models/gpt2/repository',
  );
});

test('the embedded backend mounts the claim read-only as its model repository and needs no Triton', async () => {
  const objects = await render({ valuesFiles: ['embedded-values.yaml'] });
  assert.ok(!objects.some((o) => ['SeldonDeployment', 'Role', 'RoleBinding'].includes(o.kind)));
  const env = gatewayEnv(objects);
  assert.equal(env.BACKEND, 'embedded');
  assert.equal(env.MAX_BATCH_SIZE, '4');
  assert.equal(env.TRITON_URL, undefined);
  const pod = podSpec(objects);
  assert.deepEqual(at(pod, 'containers', 0, 'volumeMounts', 1), {
    name: 'models',
    mountPath: '/models',
    readOnly: true,
  });
  assert.deepEqual(at(pod, 'volumes', 1), {
    name: 'models',
    persistentVolumeClaim: { claimName: 'gpt2-gateway-models', readOnly: true },
  });
});

test('values.schema.json rejects typos and bad values, and the templates refuse impossible combinations', async () => {
  const cases: [string[], RegExp][] = [
    [['config.backnd=triton'], /at '\/config': additional properties 'backnd' not allowed/],
    [['seldon.triton.imag=x'], /at '\/seldon\/triton': additional properties 'imag' not allowed/],
    [['config.backend=tpu'], /at '\/config\/backend'/],
    [['triton.wire=grpc'], /at '\/triton\/wire'/],
    [['config.maxNewTokensLimit=2000'], /at '\/config\/maxNewTokensLimit'/],
    [['replicas=3'], /additional properties 'replicas' not allowed/],
    [['networkPolicy.metricsFrom=prometheus'], /at '\/networkPolicy\/metricsFrom'/],
    [
      ['seldon.enabled=false'],
      /config.backend is triton but there is no Triton to talk to: set triton.url or triton.seldonDeployment, or seldon.enabled=true/,
    ],
    [
      ['triton.url=http://t:8000', 'triton.seldonDeployment=x'],
      /set triton.url or triton.seldonDeployment, not both/,
    ],
    [['modelStorage.enabled=false'], /seldon.enabled needs modelStorage.enabled/],
  ];
  for (const [set, message] of cases) {
    await assert.rejects(render({ set }), (err: unknown) => {
      assert.ok(err instanceof HelmError);
      assert.match(err.stderr, message, set.join(' '));
      return true;
    });
  }
});

test('NOTES.txt says how to reach and try the gateway, and how to fill the model volume', async () => {
  const notes = async (args: string[]) => {
    const out = await helm().run([
      'install',
      'gw',
      CHART,
      '--dry-run=client',
      '--namespace',
      'prod',
      ...args,
    ]);
    return out.slice(out.indexOf('NOTES:'));
  };
  const plain = await notes([]);
  assert.match(
    plain,
    /kubectl -n prod get sdep gw-gpt2-gateway-triton -o jsonpath='\{\.status\.state\}'/,
  );
  assert.match(
    plain,
    /kubectl -n prod port-forward svc\/gw-gpt2-gateway 8080:80 &\n\s+export GATEWAY=http:\/\/127\.0\.0\.1:8080/,
  );
  assert.match(plain, /curl -s \$GATEWAY\/complete -H 'content-type: application\/json'/);
  assert.match(plain, /kubectl -n prod create secret generic azure-secret/);
  assert.match(
    plain,
    /keeps the claim and its PersistentVolume prod-gw-gpt2-gateway-models \(helm\.sh\/resource-policy: keep\),\nstill bound, with the model on it; installing release gw in prod again adopts them/,
  );
  assert.match(
    plain,
    /kubectl -n prod delete pvc gw-gpt2-gateway-models && kubectl delete pv prod-gw-gpt2-gateway-models/,
  );
  assert.match(
    plain,
    /az storage blob upload-batch --account-name <account> -d gpt2-models -s models/,
  );
  const everything = await notes(['--values', `${CHART}/ci/everything-on-values.yaml`]);
  assert.match(everything, /export GATEWAY=https:\/\/gpt2\.example\.com/);
  assert.match(
    everything,
    /kubectl -n prod wait --for=condition=complete job\/gw-gpt2-gateway-model-build/,
  );
  assert.doesNotMatch(everything, /port-forward/);
});

// Helm allows release names of 53 characters; Kubernetes allows 63 in a DNS label and a label value.
const LONGEST_RELEASE = 'prod-eu-west-1-customer-facing-completions-canary-007';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/; // RFC 1123, as Kubernetes validates it
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/; // Service names
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Every label map in an object, wherever it sits (metadata, pod templates, selectors), with its path. */
function labelMaps(value: unknown, path = ''): [string, Record<string, unknown>][] {
  if (typeof value !== 'object' || value === null) return [];
  const found: [string, Record<string, unknown>][] = [];
  for (const [key, child] of Object.entries(value)) {
    const here = `${path}.${key}`;
    if ((key === 'labels' || key === 'matchLabels') && typeof child === 'object' && child !== null)
      found.push([here, child as Record<string, unknown>]);
    else found.push(...labelMaps(child, here));
  }
  return found;
}

test('under a 53-character release name every name and label value fits a 63-character DNS label', async () => {
  assert.equal(LONGEST_RELEASE.length, 53);
  const namespace = 'a-namespace-of-the-longest-length-kubernetes-allows-63-characte';
  assert.equal(namespace.length, 63);
  for (const file of [undefined, ...CI_VALUES]) {
    const objects = await render({
      release: LONGEST_RELEASE,
      namespace,
      valuesFiles: file === undefined ? [] : [file],
    });
    const where = file ?? 'defaults';
    for (const o of objects) {
      const name = o.metadata.name;
      assert.ok(name.length <= 63, `${where}: ${o.kind}/${name} is ${name.length} characters`);
      assert.match(name, DNS_LABEL, `${where}: ${o.kind} name`);
      if (o.kind === 'Service') assert.match(name, DNS_1035_LABEL, `${where}: Service name`);
      for (const [path, labels] of labelMaps(o)) {
        for (const [key, value] of Object.entries(labels)) {
          const text = String(value);
          assert.ok(text.length <= 63, `${where}: ${o.kind}${path}.${key} is ${text.length} long`);
          assert.match(text, LABEL_VALUE, `${where}: ${o.kind}${path}.${key}`);
        }
      }
    }
    // Cut names stay distinct, and the objects that name each other still agree.
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`);
    assert.equal(new Set(names).size, names.length, `${where}: ${names.join(' ')}`);
    const job = objects.find((o) => o.kind === 'Job');
    if (job !== undefined) {
      // The API server copies the Job's name into its pods' job-name label.
      assert.ok(job.metadata.name.endsWith('-model-build'));
      const claim = at(job, 'spec', 'template', 'spec', 'volumes', 0, 'persistentVolumeClaim');
      assert.equal(at(claim, 'claimName'), one(objects, 'PersistentVolumeClaim').metadata.name);
    }
    const pvc = objects.find((o) => o.kind === 'PersistentVolumeClaim');
    if (pvc !== undefined) {
      assert.ok(pvc.metadata.name.endsWith('-models'));
      const pv = one(objects, 'PersistentVolume');
      assert.equal(at(pvc, 'spec', 'volumeName'), pv.metadata.name);
      assert.deepEqual(at(pv, 'spec', 'claimRef'), { namespace, name: pvc.metadata.name });
    }
    if (pvc !== undefined) {
      // PVs are cluster-wide: another release in this namespace must not get the same one.
      const other = await render({
        release: 'other',
        namespace,
        valuesFiles: file === undefined ? [] : [file],
      });
      const pv = one(objects, 'PersistentVolume');
      const otherPv = one(other, 'PersistentVolume');
      assert.notEqual(otherPv.metadata.name, pv.metadata.name, where);
      assert.notEqual(
        at(otherPv, 'spec', 'csi', 'volumeHandle'),
        at(pv, 'spec', 'csi', 'volumeHandle'),
      );
    }
    const sdep = objects.find((o) => o.kind === 'SeldonDeployment');
    if (sdep !== undefined) {
      // Seldon names its services <sdep>-<predictor>-<graph> and hashes names over 63 characters.
      const predictor = at(sdep, 'spec', 'predictors', 0);
      const service = `${sdep.metadata.name}-${at(predictor, 'name')}-${at(predictor, 'graph', 'name')}`;
      assert.ok(service.length <= 63, service);
      assert.ok(sdep.metadata.name.endsWith('-triton'));
      const config = objects.find(
        (o) => o.kind === 'ConfigMap' && 'SELDON_DEPLOYMENT' in (o.data as object),
      );
      assert.equal(at(config, 'data', 'SELDON_DEPLOYMENT'), sdep.metadata.name);
    }
  }
});

test('uninstall keeps the claim with its volume, and a reinstall of the release adopts both, bound by name', async () => {
  for (const file of [undefined, 'embedded-values.yaml', 'everything-on-values.yaml']) {
    const where = file ?? 'defaults';
    const install = async () =>
      render({ release: 'gw', namespace: 'prod', valuesFiles: file === undefined ? [] : [file] });
    const first = await install();
    // Both are kept on `helm uninstall`: a deleted claim leaves the Retain PV Released with the
    // deleted claim's uid in claimRef, and no new claim binds it.
    for (const kind of ['PersistentVolume', 'PersistentVolumeClaim']) {
      assert.equal(
        at(one(first, kind), 'metadata', 'annotations', 'helm.sh/resource-policy'),
        'keep',
        `${where}: ${kind}`,
      );
    }
    // The second install renders the same names (nothing random, nothing per install), so Helm
    // adopts the kept objects (their meta.helm.sh/release-* annotations name this release) and the
    // claim the PV is bound to is the claim the release uses.
    const second = await install();
    const pv = one(second, 'PersistentVolume');
    const pvc = one(second, 'PersistentVolumeClaim');
    assert.equal(pv.metadata.name, one(first, 'PersistentVolume').metadata.name, where);
    assert.equal(pvc.metadata.name, one(first, 'PersistentVolumeClaim').metadata.name, where);
    assert.deepEqual(at(pv, 'spec', 'claimRef'), { namespace: 'prod', name: pvc.metadata.name });
    assert.equal(at(pv, 'spec', 'claimRef', 'uid'), undefined, `${where}: no uid pinned`);
    assert.equal(at(pvc, 'spec', 'volumeName'), pv.metadata.name);
    // Every user of the claim (the gateway pods, the model Job, Triton's modelUri) names that claim.
    const users = [...second.filter((o) => o.kind === 'Job'), one(second, 'Deployment')]
      .flatMap((o) => at(o, 'spec', 'template', 'spec', 'volumes') as unknown[])
      .map((v) => at(v, 'persistentVolumeClaim', 'claimName'))
      .filter((c) => c !== undefined);
    const sdep = second.find((o) => o.kind === 'SeldonDeployment');
    if (sdep !== undefined) {
      const uri = String(at(sdep, 'spec', 'predictors', 0, 'graph', 'modelUri'));
      users.push(/^pvc:\/\/([^/]+)\//.exec(uri)?.[1] ?? uri);
    }
    assert.ok(users.length > 0, where);
    for (const claim of users) assert.equal(claim, pvc.metadata.name, where);
  }
  // Another release in the namespace gets its own claim and volume, never the kept ones.
  const other = await render({ release: 'gw2', namespace: 'prod' });
  assert.equal(one(other, 'PersistentVolumeClaim').metadata.name, 'gw2-gpt2-gateway-models');
  assert.equal(one(other, 'PersistentVolume').metadata.name, 'prod-gw2-gpt2-gateway-models');
});

test('with a NetworkPolicy, Prometheus may scrape the metrics port from its own namespace', async () => {
  const ingressRules = async (set: string[]) =>
    at(
      one(await render({ valuesFiles: ['everything-on-values.yaml'], set }), 'NetworkPolicy'),
      'spec',
      'ingress',
    );
  const ingressOnly = {
    ports: [{ port: 'http', protocol: 'TCP' }],
    from: [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } } },
    ],
  };
  // prometheus-operator labels the pods of every Prometheus it runs app.kubernetes.io/name=prometheus.
  const scraper = {
    ports: [{ port: 'http', protocol: 'TCP' }],
    from: [
      {
        namespaceSelector: {},
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      },
    ],
  };
  assert.deepEqual(await ingressRules([]), [ingressOnly, scraper]);
  // The scrape rule names the port the ServiceMonitor scrapes.
  const monitor = one(
    await render({ valuesFiles: ['everything-on-values.yaml'] }),
    'ServiceMonitor',
  );
  assert.equal(at(monitor, 'spec', 'endpoints', 0, 'port'), scraper.ports[0]?.port);
  // Scraping by pod annotations needs the rule as much as the ServiceMonitor does.
  assert.deepEqual(await ingressRules(['metrics.serviceMonitor.enabled=false']), [
    ingressOnly,
    scraper,
  ]);
  assert.deepEqual(
    await ingressRules(['metrics.serviceMonitor.enabled=false', 'metrics.podAnnotations=false']),
    [ingressOnly],
    'nothing scrapes: no scrape rule',
  );
  assert.deepEqual(await ingressRules(['networkPolicy.metricsFrom=null']), [ingressOnly]);
  const own = await ingressRules([
    'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring',
  ]);
  assert.deepEqual(at(own, 1, 'from'), [
    { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
  ]);
});

test('metrics.port serves /metrics on its own port: env, container and Service ports, annotations, ServiceMonitor, NetworkPolicy', async () => {
  const objects = await render({
    valuesFiles: ['everything-on-values.yaml'],
    set: ['metrics.port=9090'],
  });
  const env = gatewayEnv(objects);
  assert.equal(env.METRICS_PORT, '9090');
  assert.equal(loadConfig(env).metricsPort, 9090);
  const container = at(podSpec(objects), 'containers', 0) as { ports: unknown[] };
  assert.deepEqual(container.ports, [
    { name: 'http', containerPort: 8080, protocol: 'TCP' },
    { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
  ]);
  const service = one(objects, 'Service', 'gpt2-gateway');
  assert.deepEqual(at(service, 'spec', 'ports', 1), {
    port: 9090,
    targetPort: 'metrics',
    protocol: 'TCP',
    name: 'metrics',
  });
  const annotations = at(one(objects, 'Deployment'), 'spec', 'template', 'metadata', 'annotations');
  assert.equal(at(annotations, 'prometheus.io/port'), '9090');
  assert.equal(at(one(objects, 'ServiceMonitor'), 'spec', 'endpoints', 0, 'port'), 'metrics');
  const rules = at(one(objects, 'NetworkPolicy'), 'spec', 'ingress') as { ports: unknown[] }[];
  assert.deepEqual(rules[0]!.ports, [{ port: 'http', protocol: 'TCP' }]);
  assert.deepEqual(rules[1]!.ports, [{ port: 'metrics', protocol: 'TCP' }]);
  // 8080 is the API's own port.
  await assert.rejects(render({ set: ['metrics.port=8080'] }), HelmError);
});

test('auth.existingSecret mounts the keys file read-only and sets API_KEYS_FILE; the chart makes no Secret', async () => {
  const objects = await render({ set: ['auth.existingSecret=gw-keys', 'auth.secretKey=api-keys'] });
  const env = gatewayEnv(objects);
  assert.equal(env.API_KEYS_FILE, '/etc/gpt2-gateway/api-keys/api-keys');
  assert.equal(loadConfig(env).apiKeysFile, '/etc/gpt2-gateway/api-keys/api-keys');
  const spec = podSpec(objects) as {
    volumes: { name: string }[];
    containers: { volumeMounts: { name: string }[] }[];
  };
  assert.deepEqual(
    spec.volumes.find((v) => v.name === 'api-keys'),
    {
      name: 'api-keys',
      secret: {
        secretName: 'gw-keys',
        items: [{ key: 'api-keys', path: 'api-keys' }],
        defaultMode: 0o440,
      },
    },
  );
  // A directory mount (a subPath would never see the Secret rotate), read-only.
  assert.deepEqual(
    spec.containers[0]!.volumeMounts.find((m) => m.name === 'api-keys'),
    { name: 'api-keys', mountPath: '/etc/gpt2-gateway/api-keys', readOnly: true },
  );
  assert.deepEqual(
    kinds(objects).filter((k) => k.startsWith('Secret/')),
    [],
  );
  // Without it: no mount, no API_KEYS_FILE.
  const open = await render({});
  assert.equal(gatewayEnv(open).API_KEYS_FILE, undefined);
  assert.equal(
    (podSpec(open) as { volumes: { name: string }[] }).volumes.some((v) => v.name === 'api-keys'),
    false,
  );
});

test("the model Job's pod is selected by none of the gateway's selectors (Service, PDB, NetworkPolicy)", async () => {
  const objects = await render({ valuesFiles: ['everything-on-values.yaml'] });
  const jobPod = at(one(objects, 'Job'), 'spec', 'template', 'metadata', 'labels') as Record<
    string,
    string
  >;
  const gatewayPod = at(
    one(objects, 'Deployment'),
    'spec',
    'template',
    'metadata',
    'labels',
  ) as Record<string, string>;
  const selects = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([key, value]) => labels[key] === value);
  const selectors: [string, Record<string, string>][] = [
    ['Service', at(one(objects, 'Service'), 'spec', 'selector') as Record<string, string>],
    [
      'PodDisruptionBudget',
      at(one(objects, 'PodDisruptionBudget'), 'spec', 'selector', 'matchLabels') as Record<
        string,
        string
      >,
    ],
    [
      'NetworkPolicy',
      at(one(objects, 'NetworkPolicy'), 'spec', 'podSelector', 'matchLabels') as Record<
        string,
        string
      >,
    ],
  ];
  for (const [kind, selector] of selectors) {
    assert.equal(selects(selector, gatewayPod), true, `${kind} selects the gateway`);
    assert.equal(selects(selector, jobPod), false, `${kind} must not select the model Job's pod`);
  }
});
