#!/usr/bin/env node
// Regenerates k8s/gpt2-gateway.yaml from chart/ (npm run k8s builds first).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Helm } from '../dist/src/deploy/helm.js';
import { PLAIN_MANIFESTS_FILE, renderPlainManifests } from '../dist/src/deploy/plain-manifests.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const helm = new Helm({ binary: join(root, '.tools/helm') });
writeFileSync(
  join(root, PLAIN_MANIFESTS_FILE),
  await renderPlainManifests(helm, join(root, 'chart')),
);
process.stderr.write(`wrote ${PLAIN_MANIFESTS_FILE}\n`);
