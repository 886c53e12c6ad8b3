/** Builds the app the way server.ts does, from a literal config (never process.env). */
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { type AppDeps, buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { ToyBackend } from './toy-backend.js';

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ RATE_LIMIT_MAX: '0', ...overrides });
}

export async function toyApp(
  overrides: Record<string, string> = {},
  deps: Partial<AppDeps> = {},
): Promise<{ app: FastifyInstance; backend: ToyBackend }> {
  const backend = (deps.backend as ToyBackend | undefined) ?? new ToyBackend();
  const app = await buildApp(testConfig(overrides), { ...deps, backend });
  return { app, backend };
}

export interface CompletionBody {
  text: string;
  finish_reason: string;
  tokens: { id: number; text: string; logprob: number }[];
}

/**
 * POST /complete for every prompt at once, so the scheduler steps them together; each answer
 * must be 200. Returns the bodies in the order of the prompts.
 */
export async function completeConcurrently(
  app: FastifyInstance,
  prompts: readonly string[],
  maxNewTokens: number,
): Promise<CompletionBody[]> {
  const answers = await Promise.all(
    prompts.map((prompt) =>
      app.inject({
        method: 'POST',
        url: '/complete',
        payload: { prompt, max_new_tokens: maxNewTokens },
      }),
    ),
  );
  return answers.map((res, i) => {
    assert.equal(res.statusCode, 200, `${prompts[i]}: ${res.body}`);
    return res.json<CompletionBody>();
  });
}
