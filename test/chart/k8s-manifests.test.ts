import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { PLAIN_MANIFESTS_FILE, renderPlainManifests } from '../../src/deploy/plain-manifests.js';
import { at, CHART, helm, one, ROOT, render } from './render.js';

test('k8s/gpt2-gateway.yaml is exactly the chart rendered with its defaults (run npm run k8s when this fails)', async () => {
  const expected = await renderPlainManifests(helm(), CHART);
  assert.equal(readFileSync(`${ROOT}${PLAIN_MANIFESTS_FILE}`, 'utf8'), expected);
});

/** Reads `key = value` lines of one TOML table from the agent ConfigMap (the values are TOML arrays, strings or booleans). */
function tomlTable(toml: string, table: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let inside = false;
  for (const raw of toml.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('[')) {
      inside = line === `[${table}]`;
      continue;
    }
    const m = /^([a-z_]+)\s*=\s*(.+)$/.exec(line);
    if (inside && m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = JSON.parse(m[2]);
  }
  return out;
}

test('the Container Insights ConfigMap scrapes the gateway, Triton and the Seldon executor of the default install', async () => {
  const cm = parse(
    readFileSync(`${ROOT}k8s/azure-monitor/container-azm-ms-agentconfig.yaml`, 'utf8'),
  ) as unknown;
  assert.equal(at(cm, 'metadata', 'name'), 'container-azm-ms-agentconfig');
  assert.equal(at(cm, 'metadata', 'namespace'), 'kube-system');
  assert.equal(at(cm, 'data', 'schema-version'), 'v1');
  const settings = tomlTable(
    String(at(cm, 'data', 'prometheus-data-collection-settings')),
    'prometheus_data_collection_settings.cluster',
  );

  const objects = await render();
  const sdep = one(objects, 'SeldonDeployment');
  const predictor = String(at(sdep, 'spec', 'predictors', 0, 'name'));
  assert.deepEqual(settings, {
    interval: '1m',
    monitor_kubernetes_pods: true,
    monitor_kubernetes_pods_namespaces: ['default'],
    // Seldon's executor serves its metrics on the predictor service, :8000/prometheus
    // (docs/triton-notes.md, 'Seldon Core v1 executor').
    kubernetes_services: [`http://${sdep.metadata.name}-${predictor}.default:8000/prometheus`],
  });
  // monitor_kubernetes_pods finds the gateway and Triton only through their pod annotations.
  const gatewayPod = at(one(objects, 'Deployment'), 'spec', 'template', 'metadata', 'annotations');
  assert.equal(at(gatewayPod, 'prometheus.io/scrape'), 'true');
  assert.equal(at(gatewayPod, 'prometheus.io/port'), '8080');
  assert.equal(at(sdep, 'spec', 'annotations', 'prometheus.io/scrape'), 'true');
  assert.equal(at(sdep, 'spec', 'annotations', 'prometheus.io/port'), '8002');
});
