/** Builds the app the way server.ts does, from a literal config (never process.env). */
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
