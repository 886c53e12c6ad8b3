/**
 * The playground page: streams POST /complete (stream: true) with fetch and a stream reader
 * (EventSource cannot POST), draws one bar per token from the gateway's per-token timings, and
 * shows every failure as the gateway's own message. Every URL is relative to the page, so the
 * page also works behind a path prefix, and nothing leaves the gateway's origin.
 */
import { describeToken, drawTokenChart, type StreamToken } from './chart.js';
import { formatMs, plural } from './format.js';
import { readEvents } from './sse.js';

/** The `done` event: the completion without its tokens. */
interface StreamDone {
  text: string;
  finish_reason: string;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  timings: {
    queue_ms: number;
    time_to_first_token_ms: number;
    time_per_output_token_ms: number | null;
    backend_ms: number;
    total_ms: number;
    tokens_per_second: number;
  };
}

interface ErrorBody {
  error: { code: string; message: string };
}

/** The fields of GET /info the page reads; `auth` appears once the gateway can require keys. */
interface Info {
  version?: string;
  model?: {
    name?: string;
    variant?: string;
    random_weights?: boolean;
    notice?: string;
    context_length?: number;
  };
  backend?: { kind?: string };
  limits?: {
    max_new_tokens?: number;
    default_max_new_tokens?: number;
    max_stop_sequences?: number;
  };
  auth?: { required?: boolean };
}

/** The key lives in this tab's sessionStorage only: never in the URL or localStorage. */
const KEY_STORAGE = 'gpt2-gateway.api-key';
/** /info answers 503 until the model is loaded: ask again, this many times at most. */
const INFO_ATTEMPTS = 60;
const DETAIL_HINT = 'Hover a bar, or focus the chart and use the arrow keys, to see its token.';

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

const form = element<HTMLFormElement>('generate-form');
const promptInput = element<HTMLTextAreaElement>('prompt');
const maxNewTokensInput = element<HTMLInputElement>('max-new-tokens');
const stopInputs = [...document.querySelectorAll<HTMLInputElement>('input.stop')];
const generateButton = element<HTMLButtonElement>('generate');
const stopButton = element<HTMLButtonElement>('stop-generation');
const statusLine = element<HTMLParagraphElement>('status');
const errorBox = element<HTMLDivElement>('error');
const noticeBox = element<HTMLDivElement>('notice');
const modelInfo = element<HTMLParagraphElement>('model-info');
const authBox = element<HTMLDivElement>('auth');
const keyInput = element<HTMLInputElement>('api-key');
const authMessage = element<HTMLParagraphElement>('auth-message');
const promptEcho = element<HTMLSpanElement>('prompt-echo');
const completionOut = element<HTMLSpanElement>('completion');
const chart = element<HTMLDivElement>('token-chart');
const tokenDetail = element<HTMLParagraphElement>('token-detail');
const stats = element<HTMLDListElement>('stats');

let tokens: StreamToken[] = [];
let selected = -1;
let running: AbortController | undefined;
let chartFrame = 0;
/** GET /info answered 401/403: ask again once a key is given. */
let infoRefused = false;

function storedKey(): string {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? '';
  } catch {
    return ''; // storage disabled: the field still works for this page's life
  }
}

function showKeyField(message?: string): void {
  authBox.hidden = false;
  if (message !== undefined) authMessage.textContent = message;
}

keyInput.value = storedKey();
if (keyInput.value !== '') showKeyField();
keyInput.addEventListener('input', () => {
  try {
    if (keyInput.value === '') sessionStorage.removeItem(KEY_STORAGE);
    else sessionStorage.setItem(KEY_STORAGE, keyInput.value);
  } catch {
    // storage disabled: keep the key in the field only
  }
});
// A key typed after /info refused us: ask again with it.
keyInput.addEventListener('change', () => {
  if (infoRefused) void loadInfo();
});

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = keyInput.value;
  return key === '' ? extra : { ...extra, authorization: `Bearer ${key}` };
}

/** The gateway's message for a refused request, with what to do about it. */
async function refusal(res: Response): Promise<string> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || 'request refused';
  try {
    const body = (await res.json()) as Partial<ErrorBody>;
    if (body.error !== undefined) {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // not the gateway's JSON body (a proxy's page): keep the status line
  }
  const retryAfter = res.headers.get('retry-after');
  const retry = retryAfter === null ? '' : ` Retry after ${retryAfter} s.`;
  if (res.status === 401) showKeyField(`${message} (${code})`);
  return `${res.status} ${code}: ${message.replace(/\.$/, '')}.${retry}`;
}

function showError(text: string): void {
  errorBox.textContent = text;
  errorBox.hidden = false;
}

function clearError(): void {
  errorBox.hidden = true;
  errorBox.textContent = '';
}

async function loadInfo(): Promise<void> {
  for (let attempt = 1; attempt <= INFO_ATTEMPTS; attempt++) {
    let res: Response;
    try {
      res = await fetch('info', { headers: headers({ accept: 'application/json' }) });
    } catch (err) {
      modelInfo.textContent = `The gateway cannot be reached: ${String(err)}`;
      return;
    }
    if (res.ok) {
      infoRefused = false;
      showInfo((await res.json()) as Info);
      return;
    }
    const text = await refusal(res);
    modelInfo.textContent = text;
    if (res.status === 401 || res.status === 403) {
      infoRefused = true;
      return;
    }
    if (res.status !== 503) return;
    const wait = Number(res.headers.get('retry-after') ?? '1');
    await new Promise((resolve) => setTimeout(resolve, Math.max(1, wait) * 1000));
  }
}

function showInfo(info: Info): void {
  const model = info.model ?? {};
  const parts = [
    model.name === undefined ? 'model' : `model ${model.name}`,
    model.variant === undefined ? undefined : `${model.variant} variant`,
    info.backend?.kind === undefined ? undefined : `${info.backend.kind} backend`,
    model.context_length === undefined ? undefined : `context ${model.context_length}`,
    info.version === undefined ? undefined : `gateway ${info.version}`,
  ];
  modelInfo.textContent = parts.filter((p) => p !== undefined).join(' · ');
  if (model.random_weights === true) {
    noticeBox.replaceChildren();
    const title = document.createElement('strong');
    title.textContent = 'Random weights: the text below is meaningless; the timings are real.';
    noticeBox.append(title);
    if (model.notice !== undefined) noticeBox.append(model.notice);
    noticeBox.hidden = false;
  }
  const limit = info.limits?.max_new_tokens;
  if (limit !== undefined) maxNewTokensInput.max = String(limit);
  const maxStops = info.limits?.max_stop_sequences;
  if (maxStops !== undefined) {
    stopInputs.forEach((input, i) => {
      input.disabled = i >= maxStops;
    });
  }
  if (info.auth?.required === true) showKeyField();
}

/** `\n`, `\t` and `\\` in a stop field stand for a newline, a tab and a backslash. */
function unescapeStop(value: string): string {
  return value.replace(/\\([nt\\])/g, (_, c: string) =>
    c === 'n' ? '\n' : c === 't' ? '\t' : '\\',
  );
}

/** The request body, or a message saying which field to fix. */
function requestBody(): { body: Record<string, unknown> } | { problem: string } {
  const body: Record<string, unknown> = { prompt: promptInput.value, stream: true };
  const raw = maxNewTokensInput.value.trim();
  if (maxNewTokensInput.validity.badInput) {
    return { problem: 'Max new tokens must be a whole number.' };
  }
  // Empty means the gateway's default; anything else goes as typed, and the gateway judges it.
  if (raw !== '') body.max_new_tokens = Number(raw);
  const stop = stopInputs
    .filter((input) => !input.disabled && input.value !== '')
    .map((input) => unescapeStop(input.value));
  if (stop.length > 0) body.stop = stop;
  return { body };
}

function setRunning(on: boolean): void {
  generateButton.disabled = on;
  stopButton.disabled = !on;
  form.setAttribute('aria-busy', String(on));
}

async function generate(): Promise<void> {
  if (running !== undefined) return;
  const request = requestBody();
  clearError();
  if ('problem' in request) {
    showError(request.problem);
    maxNewTokensInput.focus();
    return;
  }
  resetOutput(promptInput.value);
  const controller = new AbortController();
  running = controller;
  setRunning(true);
  statusLine.textContent = 'Sending…';
  const started = performance.now();
  let finished = false;
  try {
    const res = await fetch('complete', {
      method: 'POST',
      headers: headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
      body: JSON.stringify(request.body),
      signal: controller.signal,
    });
    if (!res.ok) {
      showError(await refusal(res));
      statusLine.textContent = 'Refused.';
      if (res.status === 401) keyInput.focus();
      return;
    }
    if (res.body === null) throw new Error('the gateway sent no body');
    // The key that got us in also opens /info, if /info refused us before.
    if (infoRefused) void loadInfo();
    statusLine.textContent = 'Admitted, waiting for the first token…';
    for await (const event of readEvents(res.body)) {
      if (event.name === 'comment') continue;
      const data = JSON.parse(event.data) as unknown;
      if (event.name === 'token') {
        addToken(data as StreamToken);
        statusLine.textContent = `Streaming… ${plural(tokens.length, 'token')}`;
      } else if (event.name === 'done') {
        const done = data as StreamDone;
        // The done event's text is the whole completion; the streamed pieces add up to it.
        completionOut.textContent = done.text;
        flushChart();
        showStats(done);
        statusLine.textContent = `Done in ${formatMs(performance.now() - started)}.`;
        finished = true;
      } else if (event.name === 'error') {
        const body = data as ErrorBody;
        showError(
          `${body.error.code}: ${body.error.message} (after ${plural(tokens.length, 'token')})`,
        );
        statusLine.textContent = 'Failed mid-stream.';
        finished = true;
      }
    }
    if (!finished) {
      showError('The stream ended before the gateway finished the completion (connection lost).');
      statusLine.textContent = 'Interrupted.';
    }
  } catch (err) {
    if (controller.signal.aborted) {
      statusLine.textContent = `Stopped after ${plural(tokens.length, 'token')}; the gateway cancels the generation.`;
      flushChart();
      showPartialStats('stopped by you');
    } else {
      showError(`The request failed: ${err instanceof Error ? err.message : String(err)}`);
      statusLine.textContent = 'Failed.';
    }
  } finally {
    // The last tokens may still wait for a frame: the figures and the bars show together.
    flushChart();
    running = undefined;
    setRunning(false);
  }
}

function resetOutput(prompt: string): void {
  tokens = [];
  selected = -1;
  promptEcho.textContent = prompt;
  completionOut.textContent = '';
  stats.replaceChildren();
  tokenDetail.textContent = DETAIL_HINT;
  drawChart();
}

function addToken(token: StreamToken): void {
  tokens.push(token);
  completionOut.append(token.text);
  // Many tokens can arrive between two frames: draw once per frame.
  if (chartFrame === 0) {
    chartFrame = requestAnimationFrame(() => {
      chartFrame = 0;
      drawChart();
    });
  }
}

function flushChart(): void {
  if (chartFrame === 0) return;
  cancelAnimationFrame(chartFrame);
  chartFrame = 0;
  drawChart();
}

function drawChart(): void {
  drawTokenChart(chart, tokens, selected);
  chart.setAttribute('aria-valuemax', String(Math.max(0, tokens.length - 1)));
  if (tokens.length === 0) chart.setAttribute('aria-valuetext', 'no tokens yet');
}

function select(index: number): void {
  const t = tokens[index];
  if (t === undefined) return;
  chart.querySelector('.bar.selected')?.classList.remove('selected');
  chart.querySelector(`[data-token-index="${index}"]`)?.classList.add('selected');
  selected = index;
  tokenDetail.textContent = describeToken(t);
  // The chart is a slider over the tokens for keyboards and screen readers.
  chart.setAttribute('aria-valuenow', String(index));
  chart.setAttribute('aria-valuetext', describeToken(t));
}

chart.addEventListener('keydown', (event) => {
  if (tokens.length === 0) return;
  const moves: Record<string, number> = {
    ArrowRight: selected + 1,
    ArrowLeft: selected - 1,
    Home: 0,
    End: tokens.length - 1,
  };
  const next = moves[event.key];
  if (next === undefined) return;
  event.preventDefault();
  select(Math.min(tokens.length - 1, Math.max(0, next)));
});
// One listener for every bar, since the chart is redrawn as tokens arrive.
chart.addEventListener('mouseover', (event) => {
  const bar = (event.target as Element | null)?.closest('[data-token-index]');
  if (bar) select(Number(bar.getAttribute('data-token-index')));
});
chart.addEventListener('focus', () => {
  if (selected < 0) select(0);
});
window.addEventListener('resize', () => drawChart());

function setStats(rows: readonly [string, string][]): void {
  stats.replaceChildren(
    ...rows.map(([term, value]) => {
      const row = document.createElement('div');
      const dt = document.createElement('dt');
      dt.textContent = term;
      const dd = document.createElement('dd');
      dd.textContent = value;
      row.append(dt, dd);
      return row;
    }),
  );
}

function showStats(done: StreamDone): void {
  const t = done.timings;
  setStats([
    ['Time to first token', formatMs(t.time_to_first_token_ms)],
    [
      'Time per output token',
      t.time_per_output_token_ms === null ? '— (one token)' : formatMs(t.time_per_output_token_ms),
    ],
    ['Tokens/s', t.tokens_per_second.toFixed(1)],
    ['Finish reason', done.finish_reason],
    ['New tokens', String(done.usage.completion_tokens)],
    ['Prompt tokens', String(done.usage.prompt_tokens)],
    ['Queue wait', formatMs(t.queue_ms)],
    ['Backend time', formatMs(t.backend_ms)],
    ['Total', formatMs(t.total_ms)],
  ]);
}

/** After Stop the gateway sends no totals: the page works out what it can from the tokens. */
function showPartialStats(reason: string): void {
  const first = tokens[0];
  const later = tokens.slice(1);
  const perToken =
    later.length === 0
      ? undefined
      : later.reduce((s, t) => s + t.since_previous_ms, 0) / later.length;
  setStats([
    ['Time to first token', first === undefined ? '—' : formatMs(first.since_previous_ms)],
    ['Time per output token', perToken === undefined ? '—' : formatMs(perToken)],
    ['Tokens/s', perToken === undefined ? '—' : (1000 / perToken).toFixed(1)],
    ['Finish reason', reason],
    ['New tokens', String(tokens.length)],
  ]);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  void generate();
});
stopButton.addEventListener('click', () => running?.abort());
document.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    void generate();
  } else if (event.key === 'Escape' && running !== undefined) {
    running.abort();
  }
});

drawChart();
void loadInfo();
