/**
 * Discovery against a local HTTP server that answers the Kubernetes API paths for a
 * SeldonDeployment get and watch; a KubeConfig points at it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { createTritonBackend } from '../../src/backends/triton/create-triton-backend.js';
import { SeldonDiscovery, upstreamFromDeployment } from '../../src/kube/seldon-discovery.js';
import { testConfig } from '../support/app.js';

const PATH = '/apis/machinelearning.seldon.io/v1/namespaces/ml/seldondeployments';

function sdep(state: string | undefined, withAddress = true) {
  return {
    apiVersion: 'machinelearning.seldon.io/v1',
    kind: 'SeldonDeployment',
    metadata: { name: 'gpt2gpu', namespace: 'ml' },
    spec: {
      protocol: 'v2',
      predictors: [
        {
          name: 'default',
          graph: { name: 'gpt2', implementation: 'TRITON_SERVER', modelUri: 'pvc://pvc-gpt2blob/' },
        },
      ],
    },
    ...(state === undefined
      ? {}
      : {
          status: {
            state,
            ...(withAddress
              ? {
                  address: {
                    url: 'http://gpt2gpu-default.ml.svc.cluster.local:8000/v2/models/gpt2/infer',
                  },
                }
              : {}),
          },
        }),
  };
}

let server: Server;
let current: object = sdep('Creating');
let watchers: ServerResponse[] = [];
const requests: string[] = [];
let kc: KubeConfig;

before(async () => {
  server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === `${PATH}/gpt2gpu`) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(current));
    } else if (url.pathname === PATH && url.searchParams.get('watch') === 'true') {
      assert.equal(url.searchParams.get('fieldSelector'), 'metadata.name=gpt2gpu');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      watchers.push(res);
    } else {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: `seldondeployments.machinelearning.seldon.io "x" not found`,
          reason: 'NotFound',
          code: 404,
        }),
      );
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'test',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'sa', token: 'service-account-token' }],
    contexts: [{ name: 'test', cluster: 'test', user: 'sa' }],
    currentContext: 'test',
  });
});
afterEach(() => {
  for (const w of watchers) w.end();
  watchers = [];
});
after(async () => {
  server.closeAllConnections();
  server.close();
  await once(server, 'close');
});

const logs: string[] = [];
const logger = {
  info: (_o: object, m: string) => logs.push(m),
  warn: (_o: object, m: string) => logs.push(m),
};

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setImmediate(r));
}

describe('SeldonDeployment discovery', () => {
  it('derives Triton’s own :9000 service for binary, and the executor from status.address for JSON', () => {
    const t = { deployment: 'gpt2gpu', namespace: 'ml' };
    assert.deepEqual(upstreamFromDeployment(sdep('Available'), t, 'ml', 'binary'), {
      url: 'http://gpt2gpu-default-gpt2.ml.svc.cluster.local:9000',
      namespace: 'ml',
      predictor: 'default',
      graph: 'gpt2',
    });
    assert.equal(
      upstreamFromDeployment(sdep('Available'), t, 'ml', 'json').url,
      'http://gpt2gpu-default.ml.svc.cluster.local:8000',
    );
    assert.equal(
      upstreamFromDeployment(sdep('Creating', false), t, 'ml', 'json').url,
      'http://gpt2gpu-default.ml.svc.cluster.local:8000',
      'no address yet: the executor service by name',
    );
    assert.throws(
      () =>
        upstreamFromDeployment(sdep('Available'), { ...t, predictor: 'canary' }, 'ml', 'binary'),
      /has no predictor canary \(predictors: default\)/,
    );
  });

  it('reads the deployment with the service account token, then follows status.state through the watch', async () => {
    current = sdep('Creating');
    const d = new SeldonDiscovery(kc, { deployment: 'gpt2gpu', namespace: 'ml' }, logger);
    try {
      const found = await d.start('binary');
      assert.equal(found.url, 'http://gpt2gpu-default-gpt2.ml.svc.cluster.local:9000');
      assert.ok(requests.some((r) => r === `GET ${PATH}/gpt2gpu Bearer service-account-token`));
      assert.deepEqual(d.readiness(), {
        ready: false,
        reason: 'SeldonDeployment gpt2gpu is Creating',
      });
      await until(() => watchers.length === 1);
      watchers[0]?.write(`${JSON.stringify({ type: 'MODIFIED', object: sdep('Available') })}\n`);
      await until(() => d.readiness().ready);
      assert.deepEqual(d.readiness(), { ready: true });
      watchers[0]?.write(
        `${JSON.stringify({ type: 'MODIFIED', object: { ...sdep('Failed'), status: { state: 'Failed', description: 'Deployment gpt2gpu-default-0-gpt2 failed' } } })}\n`,
      );
      await until(() => !d.readiness().ready);
      assert.deepEqual(d.readiness(), {
        ready: false,
        reason: 'SeldonDeployment gpt2gpu is Failed: Deployment gpt2gpu-default-0-gpt2 failed',
      });
      watchers[0]?.write(`${JSON.stringify({ type: 'DELETED', object: sdep('Available') })}\n`);
      await until(() => d.readiness().reason === 'SeldonDeployment gpt2gpu was deleted');
    } finally {
      d.stop();
    }
  });

  it('fails clearly when the deployment cannot be read', async () => {
    const d = new SeldonDiscovery(kc, { deployment: 'nope', namespace: 'ml' }, logger);
    await assert.rejects(
      d.start('binary'),
      /cannot read SeldonDeployment ml\/nope \(HTTP 404\).*RBAC/,
    );
    d.stop();
  });

  it('BACKEND=triton without TRITON_URL uses discovery; its state gates the backend’s readiness', async () => {
    current = sdep('Available');
    const config = testConfig({
      BACKEND: 'triton',
      SELDON_DEPLOYMENT: 'gpt2gpu',
      SELDON_NAMESPACE: 'ml',
      TRITON_WIRE: 'json',
    });
    const { backend } = await createTritonBackend(config, pino({ level: 'silent' }), kc);
    try {
      await until(() => watchers.length === 1);
      // Not initialised: the upstream is not contacted here (there is no cluster DNS in a test).
      assert.equal(backend.readiness().ready, false);
      watchers[0]?.write(`${JSON.stringify({ type: 'MODIFIED', object: sdep('Creating') })}\n`);
      await until(() => backend.readiness().reason === 'SeldonDeployment gpt2gpu is Creating');
    } finally {
      await backend.close();
    }
  });

  it('an explicit TRITON_URL wins over SELDON_DEPLOYMENT', async () => {
    const before = requests.length;
    const config = testConfig({
      BACKEND: 'triton',
      TRITON_URL: 'http://127.0.0.1:1',
      SELDON_DEPLOYMENT: 'gpt2gpu',
    });
    const { backend } = await createTritonBackend(config, pino({ level: 'silent' }), kc);
    assert.equal(requests.length, before, 'the Kubernetes API is not consulted');
    await backend.close();
  });
});
