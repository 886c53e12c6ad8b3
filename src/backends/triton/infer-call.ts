/**
 * One POST /v2/models/{name}/infer: encode the inputs (binary tensors directly to Triton, JSON
 * through the Seldon executor, which corrupts binary bodies; see docs/triton-notes.md), request
 * only the outputs the plan reads, and decode the answer. Failures arrive as BackendErrors mapped
 * in upstream-errors.ts.
 */

import type { TensorRef } from '../../contract/signature.js';
import {
  decodeInferResponse,
  encodeInferRequest,
  HEADER_LENGTH_HEADER,
} from '../../kserve/infer-body.js';
import type { Parameters } from '../../kserve/messages.js';
import { type Tensor, WireFormatError } from '../../kserve/tensor-codec.js';
import { BackendError } from '../backend.js';
import type { Logger } from './health.js';
import type { Wire } from './plan.js';
import type { UpstreamClient } from './upstream-client.js';
import { fromTransportError, UpstreamErrorBody } from './upstream-errors.js';

export type InferEndpoint = 'infer' | 'sequence_end';

export interface InferCallOptions {
  readonly client: UpstreamClient;
  readonly modelPath: string;
  readonly wire: Wire;
  readonly log: Logger;
}

/** Sends one inference; resolves with the outputs by name. */
export type Infer = (
  inputs: Tensor[],
  parameters: Parameters | undefined,
  signal: AbortSignal | undefined,
  endpoint?: InferEndpoint,
) => Promise<ReadonlyMap<string, Tensor>>;

export function inferCall(o: InferCallOptions, outputs: readonly TensorRef[]): Infer {
  const binary = o.wire === 'binary';
  const path = `${o.modelPath}/infer`;
  return async (inputs, parameters, signal, endpoint = 'infer') => {
    const { body, headerLength } = encodeInferRequest({
      ...(parameters ? { parameters } : {}),
      inputs: inputs.map((tensor) => ({ tensor, binary })),
      outputs: outputs.map((t) => ({ name: t.name, binary })),
    });
    const headers: Record<string, string> =
      headerLength === undefined
        ? { 'content-type': 'application/json' }
        : {
            'content-type': 'application/octet-stream',
            [HEADER_LENGTH_HEADER]: String(headerLength),
          };
    let res: Awaited<ReturnType<UpstreamClient['expectOk']>>;
    try {
      res = await o.client.expectOk({
        endpoint,
        method: 'POST',
        path,
        body,
        headers,
        what: 'inference',
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (err instanceof BackendError && err.cause instanceof UpstreamErrorBody) {
        // The upstream's words go to the log only; the client gets the code and a generic message.
        o.log.warn(
          { upstreamStatus: err.cause.status, upstreamError: err.cause.message, code: err.code },
          'model server refused an inference',
        );
      }
      throw err;
    }
    try {
      return decodeInferResponse(res.body, res.headers[HEADER_LENGTH_HEADER]).outputs;
    } catch (err) {
      // A malformed answer is mapped where every other upstream failure is.
      throw err instanceof WireFormatError ? fromTransportError(err, 'inference') : err;
    }
  };
}
