/**
 * What init() learns from the upstream before it plans: the model's metadata (required), its
 * config and the server's version (both optional: the Seldon executor routes neither
 * GET /v2/models/{name}/config nor GET /v2, so their absence is normal there).
 */
import {
  type ModelMetadataJson,
  parseModelMetadata,
  parseServerMetadata,
} from '../../kserve/messages.js';
import { modelConfigFromJson, type TritonModelConfig } from '../../kserve/model-config.js';
import type { Logger } from './health.js';
import type { UpstreamClient } from './upstream-client.js';

export interface Discovered {
  readonly metadata: ModelMetadataJson;
  readonly config: TritonModelConfig | undefined;
  readonly serverVersion: string | undefined;
}

export async function discoverModel(
  client: UpstreamClient,
  modelPath: string,
  log: Logger,
): Promise<Discovered> {
  const json = await client.getJson('metadata', modelPath, 'model metadata');
  let metadata: ModelMetadataJson;
  try {
    metadata = parseModelMetadata(json);
  } catch (err) {
    throw new Error(
      `Triton backend: GET ${modelPath} answered something that is not model metadata: ${(err as Error).message}`,
    );
  }
  const optional = async <T>(
    endpoint: 'config' | 'server_metadata',
    path: string,
    what: string,
    parse: (v: unknown) => T,
  ): Promise<T | undefined> => {
    try {
      return parse(await client.getJson(endpoint, path, what));
    } catch (err) {
      log.info(
        { path, err: err instanceof Error ? err.message : String(err) },
        `${what} not available; going on without it`,
      );
      return undefined;
    }
  };
  const config = await optional(
    'config',
    `${modelPath}/config`,
    'model config',
    modelConfigFromJson,
  );
  const server = await optional('server_metadata', '/v2', 'server metadata', parseServerMetadata);
  return { metadata, config, serverVersion: server?.version };
}
