/**
 * The default model's cache: a current build is reused, an older graph's is rebuilt (an existing
 * checkout must not keep serving kv logits for every prompt position after an upgrade).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  DEFAULT_MODEL_NAME,
  ensureDefaultModel,
} from '../../../src/backends/embedded/default-model.js';
import { NAMED_CONFIGS } from '../../../src/model/configs.js';
import { GRAPH_VERSION } from '../../../src/model/gpt2-graph.js';
import { readModelSummary } from '../../../src/model/metadata.js';

let dir: string;
let modelFile: string;
const messages: string[] = [];
const logger = {
  info: (obj: unknown, msg?: string) => {
    messages.push(`${msg ?? ''} ${JSON.stringify(obj)}`);
  },
};
const ensure = () => ensureDefaultModel(dir, modelFile, logger, { config: NAMED_CONFIGS.tiny });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'default-model-'));
  modelFile = join(dir, DEFAULT_MODEL_NAME, '1', 'model.onnx');
});
after(() => rm(dir, { recursive: true, force: true }));

/** Rewrites one metadata value in place (same length), as an older builder would have left it. */
async function setProperty(key: string, from: string, to: string): Promise<void> {
  const bytes = await readFile(modelFile);
  const needle = Buffer.concat([
    Buffer.from(key),
    Buffer.from([0x12, from.length]),
    Buffer.from(from),
  ]);
  const at = bytes.indexOf(needle);
  assert.ok(at >= 0, `${key}=${from} not found in the file`);
  Buffer.from(to).copy(bytes, at + key.length + 2);
  await writeFile(modelFile, bytes);
}

test('built once with the current graph version, then reused as is', async () => {
  await ensure();
  const summary = await readModelSummary(modelFile, 'm');
  assert.equal(summary.properties['gpt2.graph_version'], String(GRAPH_VERSION));
  assert.equal(summary.properties['gpt2.logits'], 'last');
  assert.deepEqual(summary.metadata.outputs[0], {
    name: 'logits',
    datatype: 'FP32',
    shape: [-1, 1, NAMED_CONFIGS.tiny.vocabSize],
  });
  const built = (await stat(modelFile)).mtimeMs;
  assert.equal(messages.filter((m) => m.startsWith('building')).length, 1);
  await ensure();
  assert.equal((await stat(modelFile)).mtimeMs, built);
  assert.equal(messages.filter((m) => m.startsWith('building')).length, 1);
});

test('a cached build from an older graph version is rebuilt', async () => {
  const older = String(GRAPH_VERSION - 1);
  await setProperty('gpt2.graph_version', String(GRAPH_VERSION), older);
  assert.equal((await readModelSummary(modelFile, 'm')).properties['gpt2.graph_version'], older);
  messages.length = 0;
  await ensure();
  assert.equal(messages.length, 2, messages.join('\n'));
  assert.match(
    messages[0]!,
    new RegExp(`stale: gpt2.graph_version is '${older}', not '${GRAPH_VERSION}'`),
  );
  assert.equal(
    (await readModelSummary(modelFile, 'm')).properties['gpt2.graph_version'],
    String(GRAPH_VERSION),
  );
});

test('a cached build with every position’s logits is rebuilt', async () => {
  await setProperty('gpt2.logits', 'last', 'all!');
  messages.length = 0;
  await ensure();
  assert.match(messages[0]!, /stale: gpt2.logits is 'all!', not 'last'/);
  assert.equal((await readModelSummary(modelFile, 'm')).properties['gpt2.logits'], 'last');
});

test('an unreadable cached file is rebuilt, not served', async () => {
  await writeFile(modelFile, 'not a model');
  messages.length = 0;
  await ensure();
  assert.match(messages[0]!, /stale: .*not .*ONNX model/);
  assert.equal((await readModelSummary(modelFile, 'm')).properties['gpt2.variant'], 'kv');
});
