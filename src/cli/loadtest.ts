import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { attack } from '../loadtest/attack.js';
import { htmlReport } from '../loadtest/html-report.js';
import { summarize } from '../loadtest/summary.js';
import { textReport } from '../loadtest/text-report.js';
import { vegetaTargets } from '../loadtest/vegeta-targets.js';
import { integerFlag, runCommand } from './command.js';
import { parseDuration } from './duration.js';

/** The origin notebook's prompt (6 GPT-2 tokens). */
const DEFAULT_PROMPT = 'I enjoy working in Seldon';
const DEFAULT_RATE = '1';
const DEFAULT_DURATION = '10s';
const DEFAULT_MAX_NEW_TOKENS = 8;
const DEFAULT_CONCURRENCY = 8;
const DEFAULT_MAX_IN_FLIGHT = 512;
const DEFAULT_MAX_REQUESTS = 100_000;
const DEFAULT_TIMEOUT = '60s';
const MAX_RATE = 10_000;

const HELP = `Usage: gpt2-gateway loadtest URL [options]

Constant-rate, open-loop load test of POST URL/complete (URL is the gateway's base URL, or a
full URL ending in /complete). Prints vegeta's report plus tokens/s and time to first token.

Options:
  --rate N|max            requests per second (default ${DEFAULT_RATE}); 'max' = as fast as
                          --concurrency workers allow (saturation)
  --duration D            how long to send (default ${DEFAULT_DURATION}; e.g. 60s, 2m)
  --max-requests N        never send more than N (default ${DEFAULT_MAX_REQUESTS})
  --concurrency N         workers for --rate max (default ${DEFAULT_CONCURRENCY})
  --max-in-flight N       open loop: requests due while N are outstanding are not sent and
                          counted as errors (default ${DEFAULT_MAX_IN_FLIGHT})
  --timeout D             per-request timeout (default ${DEFAULT_TIMEOUT})
  --prompt TEXT           prompt to send (repeatable, used in turn; default the notebook's
                          "${DEFAULT_PROMPT}")
  --max-new-tokens N      max_new_tokens of each request (default ${DEFAULT_MAX_NEW_TOKENS})
  --stream                ask for SSE and measure time to first token at the client
  --header 'Name: value'  extra request header (repeatable), e.g. an API key
  --json                  print the summary as JSON instead of text
  --html FILE             also write an HTML report with latency over time
  --vegeta-targets FILE   write the requests as a vegeta targets file (JSON format) and exit
  -h, --help              show this help
`;

export async function run(argv: string[]): Promise<number> {
  return runCommand('loadtest', HELP, parseCommandLine, argv, async (args) => {
    if (args.help) return 0;
    const { values, plan } = args;
    if (values['vegeta-targets'] !== undefined) {
      writeFileSync(values['vegeta-targets'], vegetaTargets(plan.url, plan.bodies, plan.headers));
      const rate = plan.rate === 'max' ? `0 -max-workers=${plan.concurrency}` : String(plan.rate);
      process.stderr.write(
        `wrote ${plan.bodies.length} target(s) to ${values['vegeta-targets']}; run:\n  vegeta attack -format=json -targets=${values['vegeta-targets']} -rate=${rate} -duration=${values.duration} | vegeta report\n`,
      );
      return 0;
    }
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    try {
      const what = plan.rate === 'max' ? `${plan.concurrency} workers` : `${plan.rate} req/s`;
      process.stderr.write(`loadtest: POST ${plan.url.href} at ${what} for ${values.duration}\n`);
      const result = await attack({ ...plan, signal: controller.signal });
      const summary = summarize(result);
      const text = textReport(summary);
      if (values.html !== undefined) {
        writeFileSync(
          values.html,
          htmlReport(result, text, `gpt2-gateway loadtest: ${plan.url.href} at ${what}`),
        );
      }
      process.stdout.write(values.json === true ? `${JSON.stringify(summary, null, 2)}\n` : text);
      return summary.requests > 0 && summary.success === 0 ? 1 : 0;
    } finally {
      process.removeListener('SIGINT', stop);
    }
  });
}

/** The flags and the plan they make; any mistake throws (exit 2 with its message). */
function parseCommandLine(argv: string[]) {
  const { values, positionals } = parse(argv);
  if (values.help === true) return { help: true as const };
  return { help: false as const, values, plan: planFrom(values, positionals) };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      rate: { type: 'string', default: DEFAULT_RATE },
      duration: { type: 'string', default: DEFAULT_DURATION },
      'max-requests': { type: 'string', default: String(DEFAULT_MAX_REQUESTS) },
      concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
      'max-in-flight': { type: 'string', default: String(DEFAULT_MAX_IN_FLIGHT) },
      timeout: { type: 'string', default: DEFAULT_TIMEOUT },
      prompt: { type: 'string', multiple: true },
      'max-new-tokens': { type: 'string', default: String(DEFAULT_MAX_NEW_TOKENS) },
      stream: { type: 'boolean' },
      header: { type: 'string', multiple: true },
      json: { type: 'boolean' },
      html: { type: 'string' },
      'vegeta-targets': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

function planFrom(values: ReturnType<typeof parse>['values'], positionals: string[]) {
  if (positionals.length !== 1) {
    throw new Error(
      positionals.length === 0
        ? 'missing URL (e.g. http://127.0.0.1:8080)'
        : `expected one URL, got ${positionals.length} arguments`,
    );
  }
  let url: URL;
  try {
    url = new URL(positionals[0] ?? '');
  } catch {
    throw new Error(`'${positionals[0]}' is not a URL (e.g. http://127.0.0.1:8080)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`URL must be http or https, not ${url.protocol}`);
  if (!url.pathname.endsWith('/complete'))
    url = new URL(`${url.pathname.replace(/\/$/, '')}/complete`, url);
  const rate = values.rate === 'max' ? 'max' : Number(values.rate);
  if (rate !== 'max' && !(Number.isFinite(rate) && rate > 0 && rate <= MAX_RATE)) {
    throw new Error(
      `--rate '${values.rate}' must be a number above 0 and at most ${MAX_RATE}, or 'max'`,
    );
  }
  const maxNewTokens = integerFlag('--max-new-tokens', values['max-new-tokens'], {
    min: 1,
    max: 1024,
  });
  const prompts = values.prompt ?? [DEFAULT_PROMPT];
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new Error(`--header '${h}' must look like 'Name: value'`);
    headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  return {
    url,
    rate,
    durationMs: parseDuration(values.duration, '--duration'),
    maxRequests: integerFlag('--max-requests', values['max-requests'], { min: 1, max: 10_000_000 }),
    concurrency: integerFlag('--concurrency', values.concurrency, { min: 1, max: 10_000 }),
    maxInFlight: integerFlag('--max-in-flight', values['max-in-flight'], { min: 1, max: 100_000 }),
    timeoutMs: parseDuration(values.timeout, '--timeout'),
    bodies: prompts.map((prompt) =>
      JSON.stringify({
        prompt,
        max_new_tokens: maxNewTokens,
        ...(values.stream === true ? { stream: true } : {}),
      }),
    ),
    headers,
    stream: values.stream === true,
  } as const;
}
