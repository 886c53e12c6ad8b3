/**
 * The process: read the environment once, build the backend and the app, listen, and shut down
 * gracefully on SIGTERM/SIGINT — refuse new generations (503 SHUTTING_DOWN, /readyz 503), let the
 * accepted ones finish (at most SHUTDOWN_TIMEOUT_MS, then end the rest with SHUTTING_DOWN), close
 * the server, then the backend (at most CLOSE_BUDGET_MS), and exit 0.
 * The only module that reads process.env: everything below gets a frozen Config.
 */
import { pino } from 'pino';
import { buildApp, loggerOptions } from './app.js';
import { ApiKeysFileError } from './auth/api-keys.js';
import { createBackend } from './backends/create-backend.js';
import { ConfigError, loadConfig } from './config.js';

/**
 * After the drain (at most SHUTDOWN_TIMEOUT_MS): how long closing the server and the backend may
 * take before what is left is dropped. The chart's grace period leaves room for it (values.yaml,
 * terminationGracePeriodSeconds).
 */
export const CLOSE_BUDGET_MS = 3_000;
/** Once stopped, the longest a leftover handle (an upstream call in flight) may hold the exit. */
const EXIT_BACKSTOP_MS = 1_000;

/** Whether `work` settled (either way) within `ms`; never rejects. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const settled = work.then(
    () => true as const,
    () => true as const,
  );
  const result = await Promise.race([settled, timedOut]);
  clearTimeout(timer);
  return result;
}

/** Resolves with the exit code once the server has shut down. */
export async function runServer(env: Record<string, string | undefined>): Promise<number> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`gpt2-gateway: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const logger = pino(loggerOptions(config));
  const { backend, model } = await createBackend(config, logger);
  // buildApp hands the backend the app's registry: /metrics serves its metrics too.
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp(config, { backend, loggerInstance: logger, model });
  } catch (err) {
    await backend.close();
    if (err instanceof ApiKeysFileError) {
      // Like a bad variable: the operator must fix the file (the message names its line).
      process.stderr.write(`gpt2-gateway: ${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let stopping: Promise<number> | undefined;
  const stop = (signal: string): Promise<number> => {
    stopping ??= (async () => {
      logger.info({ signal }, 'shutting down: draining in-flight generations');
      if (!(await settlesWithin(app.drain(), config.shutdownTimeoutMs))) {
        // The deadline is the operator's word: what is still running ends now, each client told
        // why (503 or an `error` event with SHUTTING_DOWN), each backend sequence released.
        const ended = app.endGenerations();
        logger.warn(
          { timeoutMs: config.shutdownTimeoutMs, ended },
          'drain timed out; ending the remaining generations',
        );
      }
      let code = 0;
      const closing = (async () => {
        await app.close();
        await backend.close();
      })().catch((err: unknown) => {
        logger.error({ err }, 'closing failed');
        code = 1;
      });
      if (!(await settlesWithin(closing, CLOSE_BUDGET_MS))) {
        // A client that does not read its answer, or a model server that does not answer the
        // sequence ENDs, must not keep the pod past its grace period.
        app.server.closeAllConnections();
        logger.warn({ budgetMs: CLOSE_BUDGET_MS }, 'closing took too long; dropping what is left');
        setTimeout(() => process.exit(code), EXIT_BACKSTOP_MS).unref();
      }
      logger.info('stopped');
      return code;
    })();
    return stopping;
  };

  const exited = new Promise<number>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => {
        if (stopping !== undefined) {
          logger.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        void stop(signal).then(resolve);
      });
    }
  });

  await app.listen({ host: config.host, port: config.port });
  // METRICS_PORT: /metrics only there, so the API port need not expose it.
  await app.metricsServer?.listen({ host: config.host, port: config.metricsPort });
  if (model.notice !== undefined) logger.warn(model.notice);
  try {
    // Listening first lets /healthz answer (and /readyz say why not) while the model loads.
    await backend.init();
    logger.info(
      { model: backend.description.modelName, variant: backend.description.variant },
      'ready',
    );
  } catch (err) {
    // A signal during start-up closes the backend under init(); that is a stop, not a failure.
    if (stopping !== undefined) return exited;
    logger.fatal({ err }, 'the backend cannot serve');
    // Also on stderr: with LOG_LEVEL=silent (or logs shipped elsewhere) the operator at the
    // terminal would otherwise see the process exit 1 without a word.
    process.stderr.write(
      `gpt2-gateway: the backend cannot serve: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    await app.close();
    await backend.close();
    return 1;
  }
  return exited;
}
