/**
 * Every model `model build` writes, opened with the onnxruntime releases Triton ships, and held
 * to the checks Triton's onnxruntime backend makes at load (ValidateInputs / ValidateOutputs in
 * triton-inference-server/onnxruntime_backend): each config.pbtxt tensor must be a model tensor
 * of the same type, the batch dim is the model's first dim when max_batch_size > 0, input dims
 * match where the model's dim is fixed, output dims match exactly. Then one greedy step per
 * runtime, whose logits must agree across runtimes.
 *
 * The runtimes are npm aliases of onnxruntime-node (package.json devDependencies), each run in
 * its own process (ort-probe.ts). A model is opened with every runtime its first Triton release
 * allows (triton-releases.ts), and must FAIL on the older ones — so the table in the README is
 * what this test establishes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseConfigPbtxt, type TritonModelConfig } from '../../src/kserve/model-config.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { writeModelRepository } from '../../src/model/model-repository.js';
import {
  compareReleases,
  firstReleaseFor,
  type ModelFacts,
  modelFactsFromProperties,
  releaseInfo,
} from '../../src/model/triton-releases.js';
import type { ProbeResult, ProbeTensor } from './ort-probe.js';

/** One per onnxruntime that a supported Triton ships; `release` is its first Triton. */
const RUNTIMES = [
  { pkg: 'onnxruntime-node-1.10', release: '22.01' },
  { pkg: 'onnxruntime-node-1.15', release: '23.05' },
  { pkg: 'onnxruntime-node-1.16', release: '24.01' },
  { pkg: 'onnxruntime-node-1.17', release: '24.04' },
  { pkg: 'onnxruntime-node-1.22', release: '25.05' },
  // The gateway's own runtime (the main dependency): newer than any Triton in the table.
  { pkg: 'onnxruntime-node', release: undefined },
] as const;

interface Form extends ModelFacts {
  seedSignature?: boolean;
  fullLogits?: boolean;
}

const FORMS: Form[] = [
  { variant: 'logits', seedSignature: true },
  ...(['logits', 'last', 'next-token', 'kv', 'kv-full'] as const).flatMap((v) =>
    [
      {},
      { fused: true },
      { quantize: 'int8' as const },
      { fused: true, quantize: 'int8' as const },
    ].map(
      (o): Form => ({
        variant: v === 'kv-full' ? 'kv' : v,
        ...(v === 'kv-full' ? { fullLogits: true } : {}),
        ...o,
      }),
    ),
  ),
];

function formName(f: Form): string {
  return [
    f.variant,
    ...(f.seedSignature ? ['seed'] : []),
    ...(f.fullLogits ? ['full'] : []),
    ...(f.fused ? ['fused'] : []),
    ...(f.quantize ? [f.quantize] : []),
  ].join('-');
}

/** Triton's config data types by the names the session reports. */
const CONFIG_TYPES: Record<string, string> = {
  TYPE_FP32: 'FP32',
  TYPE_INT64: 'INT64',
  TYPE_INT32: 'INT32',
};

/**
 * What Triton's onnxruntime backend would refuse at load, one message per problem (its wording
 * where we know it). Implicit-state tensors are model inputs and outputs too.
 */
export function tritonLoadErrors(
  config: TritonModelConfig,
  inputs: readonly ProbeTensor[],
  outputs: readonly ProbeTensor[],
): string[] {
  const errors: string[] = [];
  const states = config.sequence_batching?.state ?? [];
  const wantInputs = [
    ...config.input,
    ...states.map((s) => ({ name: s.input_name, data_type: s.data_type, dims: s.dims })),
  ];
  const wantOutputs = [
    ...config.output,
    ...states.map((s) => ({ name: s.output_name, data_type: s.data_type, dims: s.dims })),
  ];
  if (wantInputs.length !== inputs.length) {
    errors.push(
      `configuration expects ${wantInputs.length} inputs, model provides ${inputs.length}`,
    );
  }
  const check = (
    kind: string,
    want: { name: string; data_type: string; dims: readonly number[] },
    have: readonly ProbeTensor[],
    exact: boolean,
  ) => {
    const t = have.find((h) => h.name === want.name);
    if (t === undefined) {
      errors.push(`unexpected ${kind} '${want.name}', model has ${have.map((h) => h.name)}`);
      return;
    }
    if (CONFIG_TYPES[want.data_type] !== t.datatype) {
      errors.push(`${kind} '${want.name}': model is ${t.datatype}, config ${want.data_type}`);
    }
    let shape = t.shape;
    if (config.max_batch_size > 0) {
      if (shape[0] !== -1) {
        errors.push(`${kind} '${want.name}': batching needs a dynamic first dim, model [${shape}]`);
      }
      shape = shape.slice(1);
    }
    const bad =
      shape.length !== want.dims.length ||
      shape.some((d, i) => d !== want.dims[i] && (exact || d !== -1));
    if (bad) {
      errors.push(
        `tensor '${want.name}': the model expects ${t.shape.length} dimensions (shape [${t.shape}]) but the model configuration specifies ${want.dims.length + (config.max_batch_size > 0 ? 1 : 0)} dimensions (an initial batch dimension because max_batch_size > 0 followed by the explicit tensor shape, making complete shape [${config.max_batch_size > 0 ? '-1,' : ''}${want.dims}])`,
      );
    }
  };
  for (const w of wantInputs) check('input', w, inputs, false);
  for (const w of wantOutputs) check('output', w, outputs, true);
  return errors;
}

function probe(pkg: string, jobs: { id: string; file: string }[]): Promise<ProbeResult[]> {
  const script = fileURLToPath(new URL('./ort-probe.js', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, pkg], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${pkg} probe exited ${code}: ${Buffer.concat(err).toString()}`));
        return;
      }
      resolve(JSON.parse(Buffer.concat(out).toString()) as ProbeResult[]);
    });
    child.stdin.end(JSON.stringify(jobs));
  });
}

function floats(base64: string): Float32Array {
  const b = Buffer.from(base64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

let dir: string;
const models = new Map<string, { form: Form; config: TritonModelConfig; file: string }>();
/** results.get(pkg).get(form name) */
const results = new Map<string, Map<string, ProbeResult>>();

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gpt2-triton-compat-'));
  for (const form of FORMS) {
    const name = formName(form);
    const { modelDir, modelFile } = await writeModelRepository({
      repository: dir,
      name,
      config: NAMED_CONFIGS.tiny,
      weights: { kind: 'random', seed: 7 },
      variant: form.variant,
      seedSignature: form.seedSignature,
      fused: form.fused,
      quantize: form.quantize,
      fullLogits: form.fullLogits,
      instanceKind: 'cpu',
    });
    const config = parseConfigPbtxt(await readFile(join(modelDir, 'config.pbtxt'), 'utf8'));
    models.set(name, { form, config, file: modelFile });
  }
  const jobs = [...models].map(([id, m]) => ({ id, file: m.file }));
  for (const r of RUNTIMES) {
    const answers = await probe(r.pkg, jobs);
    results.set(r.pkg, new Map(answers.map((a) => [a.id, a])));
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function allowed(release: string | undefined, form: Form): boolean {
  return release === undefined || compareReleases(release, firstReleaseFor(form).release) >= 0;
}

describe('the onnxruntime releases in the test are the ones Triton ships', () => {
  test('each aliased runtime is the onnxruntime of its Triton release', () => {
    for (const r of RUNTIMES) {
      const reported = results.get(r.pkg)!.values().next().value!.runtime;
      if (r.release === undefined) continue;
      assert.equal(reported, releaseInfo(r.release)?.onnxruntime, r.pkg);
    }
  });
});

for (const form of FORMS) {
  const name = formName(form);
  describe(`${name} (first Triton: ${firstReleaseFor(form).release})`, () => {
    test('config.pbtxt records how it was built (for the gateway’s start-up check)', () => {
      const facts = modelFactsFromProperties(models.get(name)!.config.parameters ?? {});
      assert.deepEqual(facts, {
        variant: form.variant,
        fused: form.fused === true,
        ...(form.quantize ? { quantize: form.quantize } : {}),
      });
    });
    for (const r of RUNTIMES) {
      const label = `${r.pkg}${r.release ? ` (Triton ${r.release})` : ''}`;
      if (allowed(r.release, form)) {
        test(`loads on ${label} as its config.pbtxt says`, () => {
          const m = models.get(name)!;
          const p = results.get(r.pkg)!.get(name)!;
          assert.equal(p.loadError, undefined, `onnxruntime ${p.runtime}: ${p.loadError}`);
          assert.deepEqual(tritonLoadErrors(m.config, p.inputs, p.outputs), []);
          assert.equal(p.stepError, undefined, `onnxruntime ${p.runtime}: ${p.stepError}`);
          if (p.bindingOutputs !== undefined) assert.deepEqual(p.bindingOutputs, p.outputs);
          // Triton checks each answer against the config too: fixed dims must hold.
          for (const out of m.config.output) {
            const dims = p.stepDims?.[out.name];
            assert.ok(dims, `no ${out.name} in the step's answer`);
            const served = m.config.max_batch_size > 0 ? dims.slice(1) : dims;
            assert.equal(served.length, out.dims.length, out.name);
            out.dims.forEach((d, i) => {
              if (d !== -1) assert.equal(served[i], d, `${out.name} dim ${i}`);
            });
          }
        });
      } else {
        test(`is refused by ${label}, as the release table says`, () => {
          const m = models.get(name)!;
          const p = results.get(r.pkg)!.get(name)!;
          const refused =
            p.loadError !== undefined ||
            p.stepError !== undefined ||
            tritonLoadErrors(m.config, p.inputs, p.outputs).length > 0;
          assert.ok(refused, `onnxruntime ${p.runtime} loads ${name}: the table is too strict`);
        });
      }
    }
    test('one greedy step agrees on every runtime that loads it', () => {
      const answers = RUNTIMES.filter((r) => allowed(r.release, form)).map(
        (r) => results.get(r.pkg)!.get(name)!,
      );
      const reference = answers[answers.length - 1]!;
      for (const a of answers) {
        assert.equal(a.loadError, undefined);
        if (reference.lastLogits !== undefined) {
          const want = floats(reference.lastLogits);
          const got = floats(a.lastLogits!);
          assert.equal(argmax(got), argmax(want), `onnxruntime ${a.runtime} picks another token`);
          const scale = Math.max(...want.map(Math.abs));
          // int8 activations are rounded per block; the float graphs agree to float error.
          const tolerance = (form.quantize ? 0.05 : 1e-4) * scale;
          const worst = Math.max(...got.map((g, i) => Math.abs(g - want[i]!)));
          assert.ok(
            worst <= tolerance,
            `onnxruntime ${a.runtime}: |Δlogit| ${worst} > ${tolerance}`,
          );
        } else {
          assert.equal(a.nextToken, reference.nextToken, `onnxruntime ${a.runtime}`);
          assert.ok(Math.abs(a.logprob! - reference.logprob!) < (form.quantize ? 0.05 : 1e-4));
        }
      }
    });
  });
}
