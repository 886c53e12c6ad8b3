/**
 * The playground end to end, in real headless Chromium against a real listening gateway: the page
 * streams the same text /complete answers, draws one bar per token, Stop cancels the generation
 * in the gateway, refusals show the gateway's message, a key is asked for and sent when the
 * gateway requires one (a real API keys file), and the page asks nothing of any other origin and logs no error.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { buildApp } from '../../src/app.js';
import type { StepRequest, StepResult } from '../../src/backends/backend.js';
import { RANDOM_WEIGHTS_NOTICE } from '../../src/backends/embedded/default-model.js';
import { EmbeddedBackend } from '../../src/backends/embedded/embedded-backend.js';
import { buildOnnxModel } from '../../src/model/build.js';
import { NAMED_CONFIGS } from '../../src/model/configs.js';
import { testConfig, toyApp } from '../support/app.js';
import { secretKeysFile } from '../support/keys-file.js';
import { ToyBackend } from '../support/toy-backend.js';
import { type Browser, launchBrowser, openPage, type WatchedPage } from './browser.js';

const PROMPT = 'I love Artificial Intelligence because';
const NEW_TOKENS = 12;
/** Chromium's own line for a fetch answered 4xx; expected exactly where a test provokes one. */
const REFUSED_LOAD = /^Failed to load resource: the server responded with a status of (\d+)/;

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser.close());

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return `http://127.0.0.1:${address.port}`;
}

/** Every request went to the gateway itself (data: is the page's empty favicon). */
function assertSameOrigin(watched: WatchedPage, origin: string): void {
  assert.ok(watched.requests.length > 0);
  const foreign = watched.requests.filter(
    (url) => !url.startsWith(`${origin}/`) && url !== 'data:,',
  );
  assert.deepEqual(foreign, []);
}

/** No console error except Chromium's note on the refusals the test provoked. */
function assertNoConsoleError(watched: WatchedPage, refusedStatuses: readonly number[] = []): void {
  const unexpected = watched.errors.filter((text) => {
    const status = REFUSED_LOAD.exec(text)?.[1];
    return status === undefined || !refusedStatuses.includes(Number(status));
  });
  assert.deepEqual(unexpected, []);
}

async function generate(page: Page, prompt: string, maxNewTokens: string): Promise<void> {
  await page.fill('#prompt', prompt);
  await page.fill('#max-new-tokens', maxNewTokens);
  await page.click('#generate');
}

describe('on the tiny model (embedded backend)', () => {
  let dir: string;
  let backend: EmbeddedBackend;
  let app: FastifyInstance;
  let origin: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'playground-model-'));
    const modelFile = join(dir, 'tiny-kv.onnx');
    await buildOnnxModel(
      { config: NAMED_CONFIGS.tiny, weights: { kind: 'random', seed: 7, std: 0.2 }, variant: 'kv' },
      modelFile,
    );
    backend = new EmbeddedBackend({ modelFile, modelName: 'tiny-kv', intraOpNumThreads: 1 });
    await backend.init();
    app = await buildApp(testConfig(), {
      backend,
      model: { randomWeights: true, notice: RANDOM_WEIGHTS_NOTICE },
    });
    origin = await listen(app);
  });
  after(async () => {
    await app.close();
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the streamed text equals /complete, one bar per token, figures and the notice shown', async () => {
    const watched = await openPage(browser, `${origin}/`);
    const { page } = watched;
    try {
      await page.locator('#notice').getByText('Random weights').waitFor();
      assert.match(
        String(await page.locator('#notice').textContent()),
        /text below is meaningless/,
      );
      assert.match(
        String(await page.locator('#model-info').textContent()),
        /model tiny-kv · kv variant/,
      );
      // No key is asked for where the gateway requires none.
      assert.equal(await page.locator('#api-key').isVisible(), false);

      await generate(page, PROMPT, String(NEW_TOKENS));
      await page.locator('#stats').getByText('Finish reason').waitFor();

      const res = await fetch(`${origin}/complete`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: PROMPT, max_new_tokens: NEW_TOKENS }),
      });
      assert.equal(res.status, 200);
      const expected = (await res.json()) as {
        text: string;
        finish_reason: string;
        tokens: { id: number; logprob: number }[];
      };
      assert.equal(await page.locator('#completion').textContent(), expected.text);
      assert.equal(await page.locator('#prompt-echo').textContent(), PROMPT);

      const bars = page.locator('#token-chart [data-token-index]');
      assert.equal(await bars.count(), expected.tokens.length);
      for (const [i, token] of expected.tokens.entries()) {
        const title = await page
          .locator(`#token-chart [data-token-index="${i}"] > title`)
          .textContent();
        assert.match(String(title), new RegExp(`^token ${i}: .* · id ${token.id} · logprob `));
        assert.match(String(title), /backend step \d/);
      }
      const figures = String(await page.locator('#stats').textContent());
      for (const term of ['Time to first token', 'Time per output token', 'Tokens/s']) {
        assert.match(figures, new RegExp(term));
      }
      assert.match(figures, new RegExp(`Finish reason\\s*${expected.finish_reason}`));

      // Ctrl+Enter generates too, here a shorter run of the same prompt.
      await page.fill('#max-new-tokens', '3');
      await page.focus('#prompt');
      await page.keyboard.press('Control+Enter');
      // The press itself clears the figures (the handler runs as the key is dispatched).
      await page.locator('#stats').getByText('Finish reason').waitFor();
      assert.equal(await bars.count(), 3);

      // The chart is keyboard-usable: focus it and step through the tokens.
      await page.focus('#token-chart');
      await page.keyboard.press('End');
      assert.match(String(await page.locator('#token-detail').textContent()), /^token 2: /);
      assert.equal(await page.locator('#token-chart').getAttribute('aria-valuenow'), '2');

      assertSameOrigin(watched, origin);
      assertNoConsoleError(watched);
    } finally {
      await page.close();
    }
  });

  test("a prompt beyond the context shows the gateway's CONTEXT_LENGTH_EXCEEDED message", async () => {
    const watched = await openPage(browser, `${origin}/`);
    const { page } = watched;
    try {
      await generate(page, 'hello '.repeat(1100), '8');
      const error = page.locator('#error');
      await error.waitFor();
      assert.match(
        String(await error.textContent()),
        /^400 CONTEXT_LENGTH_EXCEEDED: the prompt is (at least )?\d+ tokens.*; shorten the prompt\.$/,
      );
      assert.equal(await page.locator('#generate').isEnabled(), true);
      assert.equal(await page.locator('#token-chart [data-token-index]').count(), 0);
      assertSameOrigin(watched, origin);
      assertNoConsoleError(watched, [400]);
    } finally {
      await page.close();
    }
  });

  test('readable at 320 px wide and in dark mode', async () => {
    const watched = await openPage(browser, `${origin}/`);
    const { page } = watched;
    try {
      await page.setViewportSize({ width: 320, height: 800 });
      await page.emulateMedia({ colorScheme: 'dark' });
      await generate(page, PROMPT, '40');
      await page.locator('#stats').getByText('Finish reason').waitFor();
      // A string, evaluated in the page: this project's TypeScript has no DOM types.
      const layout = (await page.evaluate(`({
        pageWidth: document.documentElement.scrollWidth,
        background: getComputedStyle(document.body).backgroundColor,
        text: getComputedStyle(document.body).color,
      })`)) as { pageWidth: number; background: string; text: string };
      // The chart scrolls inside its box; the page itself never scrolls sideways.
      assert.ok(layout.pageWidth <= 320, `page is ${layout.pageWidth} px wide`);
      assert.equal(layout.background, 'rgb(17, 20, 24)');
      assert.equal(layout.text, 'rgb(230, 233, 238)');
      assertNoConsoleError(watched);
    } finally {
      await page.close();
    }
  });
});

/** A toy backend that steps freely `free` times, then holds every step until `open()`. */
class GatedBackend extends ToyBackend {
  #opened = false;
  #open: (() => void) | undefined;
  readonly #gate = new Promise<void>((resolve) => {
    this.#open = resolve;
  });
  #releasedOne: (() => void) | undefined;
  /** Resolves when the gateway releases a sequence (its generation ended). */
  readonly sequenceReleased = new Promise<void>((resolve) => {
    this.#releasedOne = resolve;
  });

  constructor(readonly free: number) {
    super();
  }

  open(): void {
    this.#opened = true;
    this.#open?.();
  }

  override async step(batch: readonly StepRequest[]): Promise<StepResult[]> {
    if (!this.#opened && this.steps.length >= this.free) await this.#gate;
    return super.step(batch);
  }

  override async release(sequenceId: number): Promise<void> {
    await super.release(sequenceId);
    this.#releasedOne?.();
  }
}

test('Stop aborts the stream and the gateway cancels the generation mid-way', async () => {
  const MAX = 200;
  const backend = new GatedBackend(3);
  const { app } = await toyApp({}, { backend });
  // The server side of the page's /complete request: closed by the browser when Stop aborts.
  const closed = new Promise<ServerResponse>((resolve) => {
    app.server.on('request', (req, res: ServerResponse) => {
      if (req.url === '/complete') res.on('close', () => resolve(res));
    });
  });
  const origin = await listen(app);
  const watched = await openPage(browser, `${origin}/`);
  const { page } = watched;
  try {
    await generate(page, PROMPT, String(MAX));
    // Three tokens streamed; the fourth step is held, so Stop lands mid-generation.
    await page.locator('#token-chart [data-token-index="2"]').waitFor();
    assert.equal(await page.locator('#stop-generation').isEnabled(), true);
    await page.click('#stop-generation');
    const res = await closed;
    assert.equal(res.writableFinished, false, 'the browser hung up before the stream ended');
    backend.open();
    await backend.sequenceReleased;

    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /^gpt2_gateway_generations_total\{finish_reason="cancelled"\} 1$/m);
    assert.doesNotMatch(metrics.body, /finish_reason="length"\} [1-9]/);
    assert.ok(backend.steps.length < MAX, `${backend.steps.length} steps of ${MAX}`);

    await page.locator('#status').getByText('Stopped after 3 tokens').waitFor();
    assert.match(
      String(await page.locator('#stats').textContent()),
      /Finish reason\s*stopped by you/,
    );
    assert.equal(await page.locator('#token-chart [data-token-index]').count(), 3);
    assert.equal(await page.locator('#generate').isEnabled(), true);
    assert.equal(await page.locator('#stop-generation').isEnabled(), false);
    assertSameOrigin(watched, origin);
    assertNoConsoleError(watched);
  } finally {
    backend.open();
    await page.close();
    await app.close();
  }
});

test('a rate-limited Generate shows the 429 with its Retry-After', async () => {
  const { app } = await toyApp({ RATE_LIMIT_MAX: '1', RATE_LIMIT_WINDOW_MS: '60000' });
  const origin = await listen(app);
  const watched = await openPage(browser, `${origin}/`);
  const { page } = watched;
  try {
    await generate(page, PROMPT, '2');
    await page.locator('#stats').getByText('Finish reason').waitFor();
    await page.click('#generate');
    const error = page.locator('#error');
    await error.waitFor();
    assert.match(
      String(await error.textContent()),
      /^429 RATE_LIMITED: rate limit of 1 requests per 60 s exceeded; retry in .*\. Retry after \d+ s\.$/,
    );
    assertSameOrigin(watched, origin);
    assertNoConsoleError(watched, [429]);
  } finally {
    await page.close();
    await app.close();
  }
});

test('with API keys required, the page shows the 401 without a key and works with one', async () => {
  const KEY = 'playground-key-3f9a';
  const keys = await secretKeysFile(`# the playground's client\nbrowser:${KEY}\n`);
  const { app } = await toyApp({ API_KEYS_FILE: keys.path });
  const origin = await listen(app);
  const sentKeys: (string | undefined)[] = [];
  await browser.context.route(/\/complete$/, async (route) => {
    sentKeys.push(route.request().headers().authorization);
    await route.continue();
  });
  // The page itself loads without a key (it carries no data); its /info is refused until one.
  const watched = await openPage(browser, `${origin}/`);
  const { page } = watched;
  try {
    await page.locator('#api-key').waitFor();
    assert.match(
      String(await page.locator('#auth-message').textContent()),
      /this gateway needs an API key/,
    );
    await generate(page, PROMPT, '3');
    await page.locator('#error').waitFor();
    assert.match(
      String(await page.locator('#error').textContent()),
      /^401 UNAUTHORIZED: this gateway needs an API key/,
    );

    await page.fill('#api-key', KEY);
    await page.click('#generate');
    await page.locator('#stats').getByText('Finish reason').waitFor();
    assert.equal(await page.locator('#error').isVisible(), false);
    assert.deepEqual(sentKeys, [undefined, `Bearer ${KEY}`]);
    // The text shown is what /complete gives the same key for the same request.
    const direct = await fetch(`${origin}/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ prompt: PROMPT, max_new_tokens: 3 }),
    });
    assert.equal(direct.status, 200);
    const { text } = (await direct.json()) as { text: string };
    assert.equal(await page.locator('#completion').textContent(), text);
    // /info, refused at first, is asked again with the key and shows the model.
    await page.locator('#model-info').getByText('model toy').waitFor();

    const stored = await page.evaluate(
      `({ session: sessionStorage.getItem('gpt2-gateway.api-key'), local: localStorage.length, url: location.href })`,
    );
    assert.deepEqual(stored, { session: KEY, local: 0, url: `${origin}/` });
    // A reload in the same tab keeps the key; nothing about it is in any URL the page asked for.
    await page.reload();
    assert.equal(await page.locator('#api-key').inputValue(), KEY);
    assert.ok(watched.requests.every((url) => !url.includes(KEY)));
    assertSameOrigin(watched, origin);
    assertNoConsoleError(watched, [401]);
  } finally {
    await browser.context.unrouteAll();
    await page.close();
    await app.close();
    await keys.remove();
  }
});

test('GET /info with auth.required shows the key field before any request is refused', async () => {
  const { app } = await toyApp();
  const origin = await listen(app);
  // The field the gateway's /info gains with API keys, added to the real answer on its way.
  await browser.context.route(/\/info$/, async (route) => {
    const response = await route.fetch();
    const info = (await response.json()) as Record<string, unknown>;
    await route.fulfill({ response, json: { ...info, auth: { required: true } } });
  });
  const watched = await openPage(browser, `${origin}/`);
  const { page } = watched;
  try {
    await page.locator('#model-info').getByText('model toy').waitFor();
    assert.equal(await page.locator('#api-key').isVisible(), true);
    assert.equal(await page.locator('#error').isVisible(), false);
    assertNoConsoleError(watched);
  } finally {
    await browser.context.unrouteAll();
    await page.close();
    await app.close();
  }
});

test("a full queue shows the gateway's 503 QUEUE_FULL with its Retry-After", async () => {
  const backend = new GatedBackend(0);
  const { app } = await toyApp({ MAX_BATCH_SIZE: '1', MAX_QUEUE: '0' }, { backend });
  const origin = await listen(app);
  // One generation holds the only slot (its steps wait), so the page's is refused at once.
  const busy = new AbortController();
  const held = await fetch(`${origin}/complete`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: PROMPT, max_new_tokens: 4, stream: true }),
    signal: busy.signal,
  });
  assert.equal(held.status, 200);
  const watched = await openPage(browser, `${origin}/`);
  const { page } = watched;
  try {
    await generate(page, PROMPT, '4');
    await page.locator('#error').waitFor();
    assert.match(
      String(await page.locator('#error').textContent()),
      /^503 QUEUE_FULL: .+\. Retry after \d+ s\.$/,
    );
    assertSameOrigin(watched, origin);
    assertNoConsoleError(watched, [503]);
  } finally {
    busy.abort();
    backend.open();
    await page.close();
    await app.close();
  }
});
