import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { EOS_TOKEN_ID, loadGpt2Tokenizer } from '../../src/tokenizer/gpt2-tokenizer.js';
import { TokenizerPool, TokenizerPoolError } from '../../src/tokenizer/tokenizer-pool.js';
import type { WorkerReply } from '../../src/tokenizer/tokenizer-worker.js';

const tokenizer = loadGpt2Tokenizer();
const pools: TokenizerPool[] = [];
after(() => Promise.all(pools.map((pool) => pool.close())));

/** A pool closed when the file ends; every text goes to a worker unless said otherwise. */
function pool(options: ConstructorParameters<typeof TokenizerPool>[0] = {}): TokenizerPool {
  const created = new TokenizerPool({ workers: 1, inlineMaxChars: 0, ...options });
  pools.push(created);
  return created;
}

/** One long word of pseudo-random letters: the slowest text per character for BPE. */
function longWord(length: number): string {
  let seed = 3;
  let text = '';
  while (text.length < length) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    text += String.fromCharCode(97 + (seed % 26));
  }
  return text;
}

const TEXTS = [
  'Hello world',
  'I love Artificial Intelligence',
  'héllo wörld — “quotes” 世界 🤖👍🏽 and a ZWJ family 👨‍👩‍👧',
  '  two leading spaces,\ttabs\nand\n\nnewlines  \r\n',
  "it's, don't; 'quoted' (parens) [brackets] <|endoftext|> after EOS",
  'a'.repeat(5_000),
  `${'='.repeat(300)} ${'-'.repeat(129)}`,
  '日本語のテキスト、'.repeat(200),
  longWord(3_000),
  '\ud800 lone surrogates \udc00',
];

test('ids from the pool are identical to the inline tokenizer, inline and in workers, in parallel', async () => {
  const workers = pool({ workers: 2 });
  const results = await Promise.all(TEXTS.map((text) => workers.encode(text)));
  for (const [i, text] of TEXTS.entries()) {
    assert.deepEqual(results[i], tokenizer.encode(text), JSON.stringify(text.slice(0, 40)));
  }
  assert.deepEqual(await workers.encode('a<|endoftext|>'), [64, EOS_TOKEN_ID]);
  // The inline path: a short text never leaves this thread, and the ids are the same.
  const inline = pool({ inlineMaxChars: 64 });
  assert.deepEqual(await inline.encode('Hello world'), [15496, 995]);
  assert.deepEqual(inline.stats.busy, 0);
});

test('the worker answers with a typed array of ids (moved, not a cloned JS array)', async () => {
  const worker = new Worker(new URL('../../src/tokenizer/tokenizer-worker.js', import.meta.url));
  try {
    const [ready] = (await once(worker, 'message')) as [WorkerReply];
    assert.deepEqual(ready, { kind: 'ready' });
    worker.postMessage({ id: 7, text: 'Hello world' });
    const [reply] = (await once(worker, 'message')) as [WorkerReply];
    assert.equal(reply.kind, 'result');
    assert.ok(reply.kind === 'result' && reply.ids instanceof Int32Array);
    assert.deepEqual(
      { ...reply, ids: [...reply.ids] },
      { kind: 'result', id: 7, ids: [15496, 995] },
    );
  } finally {
    await worker.terminate();
  }
});

test('a large tokenization in the pool does not block the event loop (ordering)', async () => {
  const workers = pool();
  await workers.ready();
  const order: string[] = [];
  const encoded = workers.encode('a'.repeat(60_000)).then((ids) => {
    order.push('encode');
    return ids;
  });
  // Scheduled after the encode was submitted: it can only run first if the encode is elsewhere.
  setImmediate(() => order.push('immediate'));
  assert.equal((await encoded).length, 15_000);
  assert.deepEqual(order, ['immediate', 'encode']);
});

test('the same text encoded inline blocks until done: the ordering test tells the two apart', async () => {
  const inline = pool({ inlineMaxChars: Number.POSITIVE_INFINITY });
  const order: string[] = [];
  const encoded = inline.encode('a'.repeat(2_000)).then(() => order.push('encode'));
  setImmediate(() => order.push('immediate'));
  await encoded;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ['encode', 'immediate']);
});

test('a full queue refuses at once with TOKENIZER_BUSY; the queued work still completes', async () => {
  const workers = pool({ maxQueue: 1 });
  await workers.ready();
  const first = workers.encode(longWord(20_000)); // handed to the one worker
  const second = workers.encode('waits in the queue');
  assert.deepEqual(workers.stats, { workers: 1, busy: 1, queued: 1 });
  await assert.rejects(workers.encode('no room'), (err: unknown) => {
    assert.ok(err instanceof TokenizerPoolError);
    assert.equal(err.code, 'TOKENIZER_BUSY');
    assert.match(err.message, /retry later/);
    return true;
  });
  assert.deepEqual(await first, tokenizer.encode(longWord(20_000)));
  assert.deepEqual(await second, tokenizer.encode('waits in the queue'));
});

test('a worker that dies fails only its own call and is replaced', async () => {
  const workers = pool({ testHooks: { exitOnText: 'exit now' } });
  await workers.ready();
  const dying = workers.encode('exit now');
  const queued = workers.encode('Hello world');
  await assert.rejects(dying, (err: unknown) => {
    assert.ok(err instanceof TokenizerPoolError);
    assert.equal(err.code, 'TOKENIZER_WORKER_FAILED');
    assert.match(err.message, /worker died while encoding this text \(exit code 70\)/);
    return true;
  });
  assert.deepEqual(await queued, [15496, 995], 'the replacement worker serves the queue');
  assert.deepEqual(await workers.encode(' again'), tokenizer.encode(' again'));
  assert.equal(workers.stats.workers, 1);
});

test('workers that cannot start fail every long text clearly instead of respawning for ever', async () => {
  const workers = pool({ inlineMaxChars: 8, testHooks: { failStartup: true } });
  const check = (err: unknown) => {
    assert.ok(err instanceof TokenizerPoolError);
    assert.equal(err.code, 'TOKENIZER_WORKER_FAILED');
    assert.match(err.message, /fail to start \(tokenizer worker start-up failed \(test hook\)\)/);
    return true;
  };
  await assert.rejects(workers.encode('a text longer than eight'), check);
  await assert.rejects(workers.ready(), check);
  await assert.rejects(workers.encode('and the next one'), check);
  assert.deepEqual(await workers.encode('short'), tokenizer.encode('short'), 'inline still works');
  assert.equal(workers.stats.workers, 0);
});

test('close() fails what is pending with TOKENIZER_CLOSED and refuses new work', async () => {
  const workers = new TokenizerPool({ workers: 1, inlineMaxChars: 0 });
  const closed = (err: unknown) => {
    assert.ok(err instanceof TokenizerPoolError);
    assert.equal(err.code, 'TOKENIZER_CLOSED');
    assert.match(err.message, /shutting down/);
    return true;
  };
  const pending = assert.rejects(workers.encode('never answered'), closed);
  await workers.close();
  await pending;
  await assert.rejects(workers.encode('after close'), closed);
  await assert.rejects(workers.encode('x'), closed); // inline too: one rule after close
  await assert.rejects(workers.ready(), closed);
});

test('a pool leaves no handles: a process that used one exits by itself, idle or closed', async () => {
  const module = new URL('../../src/tokenizer/tokenizer-pool.js', import.meta.url).href;
  // Three pools: one closed after use, one never closed but idle, one closed mid-encode.
  const script = `
    import { TokenizerPool } from ${JSON.stringify(module)};
    const used = new TokenizerPool({ workers: 1, inlineMaxChars: 0 });
    const ids = await used.encode('a'.repeat(1000));
    await used.close();
    const idle = new TokenizerPool({ workers: 2, inlineMaxChars: 0 });
    await idle.encode('Hello world');
    const cut = new TokenizerPool({ workers: 1, inlineMaxChars: 0 });
    const cutShort = cut.encode('b'.repeat(100000)).catch((err) => err.code);
    await cut.close();
    console.log(JSON.stringify({ tokens: ids.length, cut: await cutShort }));
  `;
  // A file, not --input-type=module -e: workers inherit execArgv and refuse --input-type.
  const dir = await mkdtemp(join(tmpdir(), 'tokenizer-pool-'));
  const file = join(dir, 'child.mjs');
  await writeFile(file, script);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  // A safety net so a regression fails the test instead of hanging the suite.
  const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(guard);
  await rm(dir, { recursive: true, force: true });
  assert.equal(signal, null, 'the child had to be killed: something kept it alive');
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(stdout), { tokens: 250, cut: 'TOKENIZER_CLOSED' });
});
