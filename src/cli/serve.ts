/** `gpt2-gateway serve`: run the HTTP gateway; configuration comes from the environment only. */
import { runServer } from '../server.js';

const HELP = `Usage: gpt2-gateway serve

Starts the HTTP gateway (POST /complete, POST /tokenize, GET /info, /healthz, /readyz, /metrics).
Configured by environment variables (see README "Configuration"):
  HOST (0.0.0.0)  PORT (8080)  LOG_LEVEL (info)  TRUST_PROXY (false)
  BACKEND (embedded | triton)  MODEL_REPOSITORY (./models)  MODEL_NAME (unset: random-weight gpt2)
  MAX_BATCH_SIZE (8)  MAX_QUEUE (64)  MAX_NEW_TOKENS_LIMIT (512)  DEFAULT_MAX_NEW_TOKENS (16)
  RATE_LIMIT_MAX (120, 0 = off)  RATE_LIMIT_WINDOW_MS (60000)  BODY_LIMIT_BYTES (65536)
  SHUTDOWN_TIMEOUT_MS (30000)  REQUEST_TIMEOUT_MS (30000)  KEEP_ALIVE_TIMEOUT_MS (75000)
  MAX_CONNECTIONS (1024, 0 = no cap)
Triton backend (BACKEND=triton; README "Triton backend"):
  TRITON_URL  TRITON_WIRE (binary | json)  TRITON_TIMEOUT_MS (10000)  TRITON_CONNECTIONS (16)
  TRITON_RETRIES (2)  TRITON_BREAKER_FAILURES (5)  TRITON_BREAKER_COOLDOWN_MS (5000)
  TRITON_MAX_BATCH_SIZE (unset)  TRITON_STARTUP_TIMEOUT_MS (120000)
  SELDON_DEPLOYMENT  SELDON_NAMESPACE  SELDON_PREDICTOR  SELDON_GRAPH
`;

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (argv.length > 0) {
    process.stderr.write(
      `gpt2-gateway serve: unexpected argument '${argv[0]}' (it takes none; see --help)\n`,
    );
    return 2;
  }
  return runServer(process.env);
}
