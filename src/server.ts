/**
 * The process: read the environment once, build the backend and the app, listen, and shut down
 * gracefully on SIGTERM/SIGINT — refuse new generations (503 SHUTTING_DOWN, /readyz 503), let the
 * accepted ones finish (at most SHUTDOWN_TIMEOUT_MS), close the server, then the backend.
 * The only module that reads process.env: everything below gets a frozen Config.
 */
import { pino } from 'pino';
import { buildApp, loggerOptions } from './app.js';
import { ApiKeysFileError } from './auth/api-keys.js';
import { createBackend } from './backends/create-backend.js';
import { ConfigError, loadConfig } from './config.js';

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
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), config.shutdownTimeoutMs);
      });
      const drained = await Promise.race([app.drain().then(() => 'drained' as const), timedOut]);
      clearTimeout(timer);
      if (drained === 'timeout') {
        logger.warn({ timeoutMs: config.shutdownTimeoutMs }, 'drain timed out; closing anyway');
      }
      await app.close();
      await backend.close();
      logger.info('stopped');
      return drained === 'timeout' ? 1 : 0;
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
