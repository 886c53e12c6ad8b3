/** kv over Triton's implicit state: every sequence is ended, on completion, cancel and error (issue 4). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
