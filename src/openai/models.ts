/**
 * GET /v1/models and GET /v1/models/{id} in OpenAI's shapes (openai-node
 * src/resources/models.ts: Model is `{id, created, object: "model", owned_by}`, the list
 * `{object: "list", data}`).
 */
import { modelNotFound, type OpenAIError } from './errors.js';

/** Who `owned_by` names: the operator serves the model, OpenAI does not. */
export const DEFAULT_OWNED_BY = 'gpt2-gateway';

export interface OpenAIModel {
  id: string;
  object: 'model';
  /** Unix seconds; the gateway uses the time the model was loaded. */
  created: number;
  owned_by: string;
}

export interface OpenAIModelList {
  object: 'list';
  data: OpenAIModel[];
}

export function modelObject(id: string, created: number, ownedBy = DEFAULT_OWNED_BY): OpenAIModel {
  return { id, object: 'model', created, owned_by: ownedBy };
}

export function modelList(ids: readonly string[], created: number): OpenAIModelList {
  return { object: 'list', data: ids.map((id) => modelObject(id, created)) };
}

/** GET /v1/models/{id}: the model, or OpenAI's 404 model_not_found. */
export function retrieveModel(
  id: string,
  servedModels: readonly string[],
  created: number,
): { ok: true; model: OpenAIModel } | { ok: false; error: OpenAIError } {
  return servedModels.includes(id)
    ? { ok: true, model: modelObject(id, created) }
    : { ok: false, error: modelNotFound(id) };
}
