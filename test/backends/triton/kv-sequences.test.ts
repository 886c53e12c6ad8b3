/** kv over Triton's implicit state: every sequence is ended, on completion, cancel and error. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Dispatcher, Pool } from 'undici';
import { BackendError } from '../../../src/backends/backend.js';
import { TritonBackend } from '../../../src/backends/triton/triton-backend.js';
import { ModelServer } from '../../../src/model-server/model-server.js';
import { tinyRepository } from '../../model-server/tiny-repository.js';

let repo: Awaited<ReturnType<typeof tinyRepository>>;
let server: ModelServer;
let backend: TritonBackend;
const open = () => server.models.get('kv')?.openSequences;

before(async () => {
  repo = await tinyRepository(['kv']);
  server = await ModelServer.create({ repository: repo.dir });
  const port = await server.listen(0, '127.0.0.1');
  backend = new TritonBackend({
    url: `http://127.0.0.1:${port}`,
    modelName: 'kv',
    wire: 'binary',
    timeoutMs: 10_000,
    connections: 4,
    healthIntervalMs: 0,
    startupTimeoutMs: 0,
  });
  await backend.init();
});
after(async () => {
  await backend.close();
  await server.close();
  await repo.remove();
});

describe('kv sequences on the model server', () => {
  it('describes the model: implicit state, one call per sequence', () => {
    const d = backend.description;
    assert.equal(d.variant, 'kv');
    assert.equal(d.details.implicitState, true);
    assert.equal(d.details.batching, 'one call per sequence');
    assert.equal(d.details.tritonMaxBatchSize, 1);
  });

  it('ends a completed sequence in release()', async () => {
    const first = await backend.step([{ sequenceId: 1, tokens: [40, 1842] }]);
    const tokens = [40, 1842, first[0]?.tokenId ?? 0];
    await backend.step([{ sequenceId: 1, tokens }]);
    assert.equal(open(), 1);
    await backend.release(1);
    await backend.settled();
    assert.equal(open(), 0);
  });

  it('ends a cancelled sequence', async () => {
    const [r] = await backend.step([{ sequenceId: 2, tokens: [15496] }]);
    const ac = new AbortController();
    ac.abort(new Error('client went away'));
    await assert.rejects(
      backend.step([{ sequenceId: 2, tokens: [15496, r?.tokenId ?? 0] }], ac.signal),
      /client went away/,
    );
    assert.equal(open(), 1);
    await backend.release(2);
    await backend.settled();
    assert.equal(open(), 0);
  });

  it('ends a sequence whose step failed upstream', async () => {
    // Positions past n_positions make onnxruntime fail: an upstream {"error"} after START.
    await assert.rejects(
      backend.step([{ sequenceId: 3, tokens: new Array(1100).fill(11) }]),
      (e: unknown) => e instanceof BackendError && e.code === 'BACKEND_ERROR',
    );
    await backend.release(3);
    await backend.settled();
    assert.equal(open(), 0);
  });

  it('sends the prompt first, then only each new token, with sequence flags and the masked dummy slot', async () => {
    const url = backend.description.details.url as string;
    const bodies: Buffer[] = [];
    const pool = new Pool(url, { connections: 1 });
    const recording = pool.compose((dispatch) => (opts: Dispatcher.DispatchOptions, handler) => {
      if (opts.path.endsWith('/infer') && Buffer.isBuffer(opts.body)) bodies.push(opts.body);
      return dispatch(opts, handler);
    });
    const b = new TritonBackend({
      url,
      modelName: 'kv',
      wire: 'json',
      timeoutMs: 10_000,
      connections: 1,
      healthIntervalMs: 0,
      startupTimeoutMs: 0,
      dispatcher: recording,
    });
    try {
      await b.init();
      const [first] = await b.step([{ sequenceId: 7, tokens: [40, 1842] }]);
      const next = first?.tokenId ?? 0;
      await b.step([{ sequenceId: 7, tokens: [40, 1842, next] }]);
      await b.release(7);
      await b.settled();
      const calls = bodies.map(
        (x) =>
          JSON.parse(x.toString()) as {
            parameters: Record<string, unknown>;
            inputs: { name: string; shape: number[]; data: number[] }[];
          },
      );
      assert.equal(calls.length, 3);
      const id = calls[0]?.parameters.sequence_id;
      assert.ok(typeof id === 'number' && id > 0 && Number.isSafeInteger(id));
      const view = calls.map((c) => ({
        parameters: c.parameters,
        inputs: c.inputs.map((i) => [i.name, i.shape, i.data]),
      }));
      assert.deepEqual(view, [
        {
          parameters: { sequence_id: id, sequence_start: true, sequence_end: false },
          inputs: [
            ['input_ids', [1, 2], [40, 1842]],
            ['attention_mask', [1, 3], [0, 1, 1]],
            ['position_ids', [1, 2], [0, 1]],
          ],
        },
        {
          parameters: { sequence_id: id, sequence_start: false, sequence_end: false },
          inputs: [
            ['input_ids', [1, 1], [next]],
            ['attention_mask', [1, 4], [0, 1, 1, 1]],
            ['position_ids', [1, 1], [2]],
          ],
        },
        {
          parameters: { sequence_id: id, sequence_start: false, sequence_end: true },
          inputs: [
            ['input_ids', [1, 1], [next]],
            ['attention_mask', [1, 5], [0, 1, 1, 1, 1]],
            ['position_ids', [1, 1], [3]],
          ],
        },
      ]);
      assert.equal(open(), 0);
    } finally {
      await b.close();
      await pool.close();
    }
  });

  it('close() ends every open sequence', async () => {
    const b = new TritonBackend({
      url: backend.description.details.url as string,
      modelName: 'kv',
      wire: 'json',
      timeoutMs: 10_000,
      connections: 2,
      healthIntervalMs: 0,
      startupTimeoutMs: 0,
    });
    await b.init();
    await b.step([
      { sequenceId: 10, tokens: [1, 2] },
      { sequenceId: 11, tokens: [3] },
    ]);
    assert.equal(open(), 2);
    await b.close();
    assert.equal(open(), 0);
  });
});
