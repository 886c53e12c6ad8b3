/** GET /v1/models and GET /v1/models/{id}: the one served model, in OpenAI's shapes. */
import type { FastifyPluginAsync } from 'fastify';
import type { Backend } from '../../backends/backend.js';
import type { ErrorCode } from '../../contract/errors.js';
import { OpenAIGatewayError } from '../../openai/errors.js';
import { modelList, retrieveModel } from '../../openai/models.js';
import { openAIModelListSchema, openAIModelSchema } from '../../openai/schemas.js';
import { requireReadyBackend } from '../readiness.js';
import { openAIErrorResponses } from '../schemas.js';

export const OPENAI_MODELS_ERROR_CODES = [
  'UNAUTHORIZED',
  'BACKEND_NOT_READY',
] as const satisfies readonly ErrorCode[];
export const OPENAI_MODEL_ERROR_CODES = [
  'UNAUTHORIZED',
  'MODEL_NOT_FOUND',
  'BACKEND_NOT_READY',
] as const satisfies readonly ErrorCode[];

export interface OpenAIModelsRouteOptions {
  readonly backend: Backend;
  /** Unix seconds the app was built at: the model's `created`. */
  readonly created: number;
}

export const openAIModelsRoutes: FastifyPluginAsync<OpenAIModelsRouteOptions> = async (
  app,
  { backend, created },
) => {
  // The model's name is known for sure once the backend has read it (Triton's metadata).
  const ready = requireReadyBackend(backend);
  app.get(
    '/v1/models',
    {
      preHandler: ready,
      schema: {
        response: {
          200: openAIModelListSchema,
          ...openAIErrorResponses(OPENAI_MODELS_ERROR_CODES),
        },
      },
    },
    async () => modelList([backend.description.modelName], created),
  );
  app.get<{ Params: { id: string } }>(
    '/v1/models/:id',
    {
      preHandler: ready,
      schema: {
        response: {
          200: openAIModelSchema,
          ...openAIErrorResponses(OPENAI_MODEL_ERROR_CODES),
        },
      },
    },
    async (request) => {
      const found = retrieveModel(request.params.id, [backend.description.modelName], created);
      if (!found.ok) throw new OpenAIGatewayError('MODEL_NOT_FOUND', found.error);
      return found.model;
    },
  );
};
