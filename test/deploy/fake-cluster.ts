/**
 * A stand-in helm executable and a local HTTP server answering the Kubernetes API paths the
 * deploy commands read, plus a kubeconfig pointing at it.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StandInHelm {
  path: string;
  /** Every argv helm was called with, in order. */
  calls(): string[][];
}

/**
 * Writes a helm that logs its argv and answers per sub-command from `answers`
 * (stdout, stderr, exit code); unknown sub-commands exit 1.
 */
export function writeStandInHelm(
  answers: Record<string, { stdout?: string; stderr?: string; code?: number }>,
): StandInHelm {
  const dir = mkdtempSync(join(tmpdir(), 'standin-helm-'));
  const log = join(dir, 'calls.jsonl');
  const path = join(dir, 'helm');
  writeFileSync(
    path,
    `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + '\\n');
const answers = ${JSON.stringify(answers)};
const a = answers[args[0]];
if (a === undefined) { process.stderr.write('Error: unknown command ' + args[0] + '\\n'); process.exit(1); }
process.stdout.write(a.stdout ?? '');
process.stderr.write(a.stderr ?? '');
process.exit(a.code ?? 0);
`,
  );
  chmodSync(path, 0o755);
  return {
    path,
    calls: () => {
      try {
        return readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as string[]);
      } catch {
        return [];
      }
    },
  };
}

export interface FakeApi {
  kubeconfig: string;
  /** Request paths (with query) seen, in order. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * `deployments` and `seldon` are called once per list request (n = 0, 1, ...) and return the
 * items of that answer; `seldon` returning null answers 404 (CRD absent).
 */
export async function startFakeApi(handlers: {
  deployments: (n: number) => unknown[];
  seldon: (n: number) => unknown[] | null;
}): Promise<FakeApi> {
  const requests: string[] = [];
  let nDeployments = 0;
  let nSeldon = 0;
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    requests.push(url);
    const path = url.split('?')[0] ?? '';
    res.setHeader('content-type', 'application/json');
    if (/^\/apis\/apps\/v1\/namespaces\/[^/]+\/deployments$/.test(path)) {
      res.end(
        JSON.stringify({
          kind: 'DeploymentList',
          apiVersion: 'apps/v1',
          items: handlers.deployments(nDeployments++),
        }),
      );
      return;
    }
    if (
      /^\/apis\/machinelearning\.seldon\.io\/v1\/namespaces\/[^/]+\/seldondeployments$/.test(path)
    ) {
      const items = handlers.seldon(nSeldon++);
      if (items === null) {
        res.statusCode = 404;
        res.end(
          JSON.stringify({
            kind: 'Status',
            status: 'Failure',
            reason: 'NotFound',
            code: 404,
            message: 'the server could not find the requested resource',
          }),
        );
        return;
      }
      res.end(JSON.stringify({ kind: 'SeldonDeploymentList', items }));
      return;
    }
    res.statusCode = 404;
    res.end(JSON.stringify({ kind: 'Status', code: 404, message: `no ${path}` }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'fake-kube-'));
  const kubeconfig = join(dir, 'config');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: { server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true }
users:
  - name: tester
    user: { token: "test-token" }
contexts:
  - name: fake
    context: { cluster: fake, user: tester, namespace: models }
current-context: fake
`,
  );
  return {
    kubeconfig,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function deployment(
  name: string,
  opts: {
    want: number;
    updated: number;
    available: number;
    generation?: number;
    observed?: number;
    labels?: Record<string, string>;
  },
) {
  return {
    metadata: { name, generation: opts.generation ?? 1, labels: opts.labels ?? {} },
    spec: { replicas: opts.want },
    status: {
      observedGeneration: opts.observed ?? 1,
      replicas: opts.updated,
      updatedReplicas: opts.updated,
      availableReplicas: opts.available,
    },
  };
}

export function seldonDeployment(name: string, state: string, description?: string) {
  return {
    apiVersion: 'machinelearning.seldon.io/v1',
    kind: 'SeldonDeployment',
    metadata: { name },
    status: { state, ...(description === undefined ? {} : { description }) },
  };
}
