import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { buildApp } from '../../../src/app.js';
import { BackendError } from '../../../src/backends/backend.js';
import {
  type Logger,
  TritonBackend,
  type TritonBackendOptions,
} from '../../../src/backends/triton/triton-backend.js';
import { testConfig } from '../../support/app.js';
import {
  expectedLogprob,
  expectedNext,
  NOTEBOOK_METADATA,
  NOTEBOOK_METADATA_LOGITS_FIRST,
  ReplayTriton,
} from './replay-triton.js';

const opened: { close(): Promise<void> }[] = [];
after(async () => {
  for (const c of opened.reverse()) await c.close();
});

function backend(url: string, extra: Partial<TritonBackendOptions> = {}): TritonBackend {
  const b = new TritonBackend({
    url,
    modelName: 'gpt2',
    wire: 'binary',
    timeoutMs: 2000,
    connections: 4,
    healthIntervalMs: 0,
    startupTimeoutMs: 0,
    ...extra,
  });
  opened.push(b);
  return b;
}

async function replay(opts: ConstructorParameters<typeof Object>[0] = {}): Promise<ReplayTriton> {
  const r = await ReplayTriton.start(opts);
  opened.push(r);
  return r;
}

describe('TritonBackend against the notebook model (Triton 21.08 replay)', () => {
  for (const [order, metadata] of [
    ['past_key_values first', NOTEBOOK_METADATA],
    ['logits first', NOTEBOOK_METADATA_LOGITS_FIRST],
  ] as const) {
    it(`understands the recorded metadata with ${order} and steps one call per sequence, binary`, async () => {
      const t = await replay({ metadata });
      const b = backend(t.url);
      await b.init();
      assert.deepEqual(b.readiness(), { ready: true });
      const d = b.description;
      assert.equal(d.kind, 'triton');
      assert.equal(d.variant, 'logits');
      assert.equal(
        d.maxBatchSize,
        4,
        'no batch dimension: one call per sequence, up to the pool size',
      );
      assert.equal(d.vocabSize, 50257);
      assert.equal(d.contextLength, 1024);
      assert.deepEqual(d.details.inputs, ['input_ids:0 INT32', 'attention_mask:0 INT32']);
      assert.deepEqual(d.details.requestedOutputs, ['logits']);
      assert.equal(d.details.serverVersion, '2.13.0');
      assert.equal(d.details.tritonMaxBatchSize, 'unknown (config not reachable)');

      const results = await b.step([
        { sequenceId: 1, tokens: [15496, 11, 616] },
        { sequenceId: 2, tokens: [40] },
      ]);
      assert.deepEqual(
        results.map((r) => r.tokenId),
        [expectedNext(616), expectedNext(40)],
      );
      assert.ok(Math.abs((results[0]?.logprob ?? 0) - expectedLogprob(616)) < 1e-9);
      const infers = t.infers();
      assert.equal(infers.length, 2);
      const first = infers.find((c) => c.body.includes('"shape":[1,3]'));
      assert.ok(first);
      const h = Number(first.headers['inference-header-content-length']);
      assert.equal(
        first.body.subarray(0, h).toString(),
        '{"inputs":[{"name":"input_ids:0","datatype":"INT32","shape":[1,3],"parameters":{"binary_data_size":12}},' +
          '{"name":"attention_mask:0","datatype":"INT32","shape":[1,3],"parameters":{"binary_data_size":12}}],' +
          '"outputs":[{"name":"logits","parameters":{"binary_data":true}}]}',
        'only logits is requested, as binary; past_key_values never',
      );
      assert.equal(first.body.byteLength, h + 24);
    });
  }

  it('speaks JSON when TRITON_WIRE=json (the Seldon executor path)', async () => {
    const t = await replay();
    const b = backend(t.url, { wire: 'json' });
    await b.init();
    const [r] = await b.step([{ sequenceId: 1, tokens: [464, 2068] }]);
    assert.equal(r?.tokenId, expectedNext(2068));
    const [call] = t.infers();
    assert.equal(call?.headers['inference-header-content-length'], undefined);
    assert.deepEqual(JSON.parse(call?.body.toString() ?? ''), {
      inputs: [
        { name: 'input_ids:0', datatype: 'INT32', shape: [1, 2], data: [464, 2068] },
        { name: 'attention_mask:0', datatype: 'INT32', shape: [1, 2], data: [1, 1] },
      ],
      outputs: [{ name: 'logits' }],
    });
  });

  it('batches a step into one right-padded call when the config says max_batch_size > 0', async () => {
    const metadata = NOTEBOOK_METADATA.replace(/,\{"name":"past_key_values"[^}]*\}/, '');
    const t = await replay({
      metadata,
      config: JSON.stringify({
        name: 'gpt2',
        platform: 'onnxruntime_onnx',
        max_batch_size: 8,
        input: [],
        output: [],
      }),
    });
    const b = backend(t.url);
    await b.init();
    assert.equal(b.description.maxBatchSize, 8);
    const results = await b.step([
      { sequenceId: 1, tokens: [1, 2, 3] },
      { sequenceId: 2, tokens: [9] },
    ]);
    assert.deepEqual(
      results.map((r) => r.tokenId),
      [expectedNext(3), expectedNext(9)],
    );
    const [call] = t.infers();
    assert.equal(t.infers().length, 1);
    const h = Number(call?.headers['inference-header-content-length']);
    const tail = call?.body.subarray(h) ?? Buffer.alloc(0);
    assert.deepEqual(
      Array.from({ length: 12 }, (_, i) => tail.readInt32LE(i * 4)),
      [1, 2, 3, 9, 0, 0, 1, 1, 1, 1, 0, 0],
      'ids then mask, each [2,3], the short row padded on the right and masked',
    );
  });

  it('batches through the Seldon executor (no /config) when TRITON_MAX_BATCH_SIZE declares it', async () => {
    const metadata = NOTEBOOK_METADATA.replace(/,\{"name":"past_key_values"[^}]*\}/, '');
    const t = await replay({ metadata });
    const b = backend(t.url, { wire: 'json', maxBatchSize: 4 });
    await b.init();
    assert.equal(b.description.maxBatchSize, 4);
    assert.equal(
      b.description.details.tritonMaxBatchSize,
      '4 (TRITON_MAX_BATCH_SIZE; config not reachable)',
    );
    const results = await b.step([
      { sequenceId: 1, tokens: [5, 6] },
      { sequenceId: 2, tokens: [7] },
    ]);
    assert.deepEqual(
      results.map((r) => r.tokenId),
      [expectedNext(6), expectedNext(7)],
    );
    assert.equal(t.infers().length, 1);
  });

  it('fails init with a clear message for a model it cannot drive', async () => {
    const t = await replay({
      metadata:
        '{"name":"gpt2","versions":["1"],"platform":"onnxruntime_onnx","inputs":[{"name":"input_ids","datatype":"INT64","shape":[-1,-1]},{"name":"attention_mask","datatype":"INT64","shape":[-1,-1]}],"outputs":[{"name":"hidden_states","datatype":"FP32","shape":[-1,-1,768]}]}',
    });
    const b = backend(t.url);
    await assert.rejects(
      b.init(),
      /cannot drive model gpt2.*no output named logits, last_logits or next_token/,
    );
  });

  it('fails init when the model is not ready, naming the check', async () => {
    const t = await replay({ modelReady: false });
    const b = backend(t.url);
    await assert.rejects(
      b.init(),
      /model 'gpt2' is not ready on http:\/\/127\.0\.0\.1:\d+ \(GET \/v2\/models\/gpt2\/ready\)/,
    );
  });

  it('refuses a kv model on Triton 21.08, naming the first release that can load it', async () => {
    const metadata =
      '{"name":"gpt2","versions":["1"],"platform":"onnxruntime_onnx","inputs":[{"name":"input_ids","datatype":"INT64","shape":[-1,-1]},{"name":"attention_mask","datatype":"INT64","shape":[-1,-1]},{"name":"position_ids","datatype":"INT64","shape":[-1,-1]}],"outputs":[{"name":"logits","datatype":"FP32","shape":[-1,-1,50257]}]}';
    const t = await replay({ metadata, serverVersion: '2.13.0' });
    await assert.rejects(
      backend(t.url).init(),
      /Triton server 2\.13\.0 \(release 21\.08.*cannot load a kv model.*use Triton 22\.01 or later/,
    );
  });

  it('rejects step() before init and after close with BACKEND_NOT_READY', async () => {
    const t = await replay();
    const b = backend(t.url);
    await assert.rejects(
      b.step([{ sequenceId: 1, tokens: [1] }]),
      (e: unknown) => e instanceof BackendError && e.code === 'BACKEND_NOT_READY',
    );
    await b.init();
    await b.close();
    await assert.rejects(
      b.step([{ sequenceId: 1, tokens: [1] }]),
      (e: unknown) => e instanceof BackendError && e.code === 'BACKEND_NOT_READY',
    );
    assert.deepEqual(b.readiness(), { ready: false, reason: 'the Triton backend is closed' });
  });

  it('exports upstream metrics with bytes and outcomes on the registry it is given', async () => {
    const t = await replay();
    const registry = new Registry();
    const b = backend(t.url);
    b.registerMetrics(registry);
    // buildApp calls it once per app; a second call on the same registry changes nothing.
    b.registerMetrics(registry);
    await b.init();
    await b.step([{ sequenceId: 1, tokens: [5] }]);
    const text = await registry.metrics();
    const infer = t.infers()[0];
    assert.match(
      text,
      new RegExp(
        `gpt2_gateway_upstream_sent_bytes_total\\{endpoint="infer"\\} ${infer?.body.byteLength}\\n`,
      ),
    );
    assert.match(text, /gpt2_gateway_upstream_requests_total\{endpoint="infer",outcome="ok"\} 1\n/);
    assert.match(text, /gpt2_gateway_upstream_breaker_state 0\n/);
  });
});

export const silentLogger: Logger = { info() {}, warn() {}, debug() {} };

describe('TritonBackend readiness follows the upstream', () => {
  it('re-checks server and model readiness in the background and reports why not ready', async (t) => {
    // Polls are a chain of timeouts (they never overlap); each poll's own deadline is one too.
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const r = await replay();
    const b = backend(r.url, { healthIntervalMs: 5000 });
    await b.init();
    assert.deepEqual(b.readiness(), { ready: true });
    r.options = { ...r.options, modelReady: false };
    t.mock.timers.tick(5000);
    while (b.readiness().ready) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(b.readiness(), {
      ready: false,
      reason: `model 'gpt2' is not ready on ${r.url} (GET /v2/models/gpt2/ready)`,
    });
    r.options = { ...r.options, modelReady: true };
    t.mock.timers.tick(5000);
    while (!b.readiness().ready) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(b.readiness(), { ready: true });
  });
});

describe('/readyz notices a frozen model server', () => {
  it('turns 503 naming the upstream after the missed polls, refuses /complete at once meanwhile, and comes back when it answers', async () => {
    const r = await replay();
    // Each change of the upstream's state is one warn/info line: the test waits on those.
    const changes: { msg: string; reason: unknown }[] = [];
    let changed: (() => void) | undefined;
    const logged = (msg: string, obj: object) => {
      changes.push({ msg, reason: (obj as { reason?: unknown }).reason });
      changed?.();
    };
    const nextChange = () =>
      new Promise<void>((resolve) => {
        changed = resolve;
      });
    const b = backend(r.url, {
      healthIntervalMs: 20,
      healthTimeoutMs: 100,
      healthFailures: 2,
      logger: { info: (o, m) => logged(m, o), warn: (o, m) => logged(m, o), debug() {} },
    });
    const app = await buildApp(testConfig(), { backend: b });
    opened.push(app);
    await b.init();
    changes.length = 0;
    assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);

    let change = nextChange();
    r.freeze();
    await change;
    const reason = `the model server at ${r.url} did not answer GET /v2/health/ready within 100 ms (2 health polls in a row)`;
    assert.deepEqual(changes, [{ msg: 'model server not ready', reason }]);
    const notReady = await app.inject({ url: '/readyz' });
    assert.equal(notReady.statusCode, 503);
    assert.deepEqual(notReady.json(), {
      error: { code: 'NOT_READY', message: `backend not ready: ${reason}` },
    });
    // Requests are refused with a reason instead of each waiting TRITON_TIMEOUT_MS for a 504.
    const refused = await app.inject({
      method: 'POST',
      url: '/complete',
      payload: { prompt: 'Hello', max_new_tokens: 1 },
    });
    assert.equal(refused.statusCode, 503);
    assert.equal(refused.json<{ error: { code: string } }>().error.code, 'BACKEND_NOT_READY');

    change = nextChange();
    r.thaw();
    await change;
    assert.deepEqual(changes.at(-1), { msg: 'model server ready again', reason: undefined });
    assert.equal((await app.inject({ url: '/readyz' })).statusCode, 200);
  });
});
