/**
 * GPT-2 hyperparameters: named sizes and the Hugging Face `config.json` parser.
 */

import {
  GPT2_CONTEXT_LENGTH,
  GPT2_EOS_TOKEN_ID,
  GPT2_LAYER_NORM_EPSILON,
  GPT2_VOCAB_SIZE,
} from '../contract/model.js';

export interface Gpt2Config {
  nLayer: number;
  nHead: number;
  nEmbd: number;
  nPositions: number;
  vocabSize: number;
  layerNormEpsilon: number;
  bosTokenId: number;
  eosTokenId: number;
}

export const NAMED_CONFIGS: { readonly tiny: Gpt2Config; readonly gpt2: Gpt2Config } =
  Object.freeze({
    /**
     * For tests: the real vocabulary and context length (so the real tokenizer and the context
     * limit work unchanged), but 2 layers of width 32 — a 6.5 MB model file.
     */
    tiny: Object.freeze({
      nLayer: 2,
      nHead: 4,
      nEmbd: 32,
      nPositions: GPT2_CONTEXT_LENGTH,
      vocabSize: GPT2_VOCAB_SIZE,
      layerNormEpsilon: GPT2_LAYER_NORM_EPSILON,
      bosTokenId: GPT2_EOS_TOKEN_ID,
      eosTokenId: GPT2_EOS_TOKEN_ID,
    }),
    /** GPT-2 small, the real 124M architecture (huggingface.co/gpt2 config.json). */
    gpt2: Object.freeze({
      nLayer: 12,
      nHead: 12,
      nEmbd: 768,
      nPositions: GPT2_CONTEXT_LENGTH,
      vocabSize: GPT2_VOCAB_SIZE,
      layerNormEpsilon: GPT2_LAYER_NORM_EPSILON,
      bosTokenId: GPT2_EOS_TOKEN_ID,
      eosTokenId: GPT2_EOS_TOKEN_ID,
    }),
  });

export type NamedConfig = keyof typeof NAMED_CONFIGS;

export function isNamedConfig(name: string): name is NamedConfig {
  return Object.hasOwn(NAMED_CONFIGS, name);
}

function positiveInt(obj: Record<string, unknown>, key: string, problems: string[]): number {
  const v = obj[key];
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    problems.push(`"${key}" must be a positive integer (got ${JSON.stringify(v) ?? 'nothing'})`);
    return 0;
  }
  return v;
}

/**
 * Reads a Hugging Face GPT-2 `config.json` (already JSON-parsed). Lists every problem at once.
 * `n_ctx` is accepted where `n_positions` is missing (old checkpoints carry both).
 */
export function parseHfConfig(json: unknown): Gpt2Config {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error('config.json must be a JSON object');
  }
  const obj = json as Record<string, unknown>;
  const problems: string[] = [];
  if (obj.model_type !== undefined && obj.model_type !== 'gpt2') {
    problems.push(`"model_type" is ${JSON.stringify(obj.model_type)}, expected "gpt2"`);
  }
  const nLayer = positiveInt(obj, 'n_layer', problems);
  const nHead = positiveInt(obj, 'n_head', problems);
  const nEmbd = positiveInt(obj, 'n_embd', problems);
  const nPositions = positiveInt(
    obj,
    obj.n_positions === undefined && obj.n_ctx !== undefined ? 'n_ctx' : 'n_positions',
    problems,
  );
  const vocabSize = positiveInt(obj, 'vocab_size', problems);
  let layerNormEpsilon = GPT2_LAYER_NORM_EPSILON;
  if (obj.layer_norm_epsilon !== undefined) {
    const e = obj.layer_norm_epsilon;
    if (typeof e !== 'number' || !(e > 0) || e >= 1) {
      problems.push(`"layer_norm_epsilon" must be a number in (0, 1) (got ${JSON.stringify(e)})`);
    } else layerNormEpsilon = e;
  }
  const tokenId = (key: string): number => {
    const v = obj[key];
    if (v === undefined || v === null)
      return GPT2_EOS_TOKEN_ID < vocabSize ? GPT2_EOS_TOKEN_ID : vocabSize - 1;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= vocabSize) {
      problems.push(`"${key}" must be a token id below vocab_size (got ${JSON.stringify(v)})`);
      return 0;
    }
    return v;
  };
  const bosTokenId = tokenId('bos_token_id');
  const eosTokenId = tokenId('eos_token_id');
  if (nHead > 0 && nEmbd > 0 && nEmbd % nHead !== 0) {
    problems.push(`"n_embd" (${nEmbd}) must be divisible by "n_head" (${nHead})`);
  }
  if (problems.length > 0) throw new Error(`invalid GPT-2 config.json: ${problems.join('; ')}`);
  return {
    nLayer,
    nHead,
    nEmbd,
    nPositions,
    vocabSize,
    layerNormEpsilon,
    bosTokenId,
    eosTokenId,
  };
}

/** The Hugging Face `config.json` for a config (what transformers.js and HF tools read). */
export function toHfConfig(config: Gpt2Config): Record<string, unknown> {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    activation_function: 'gelu_new',
    n_layer: config.nLayer,
    n_head: config.nHead,
    n_embd: config.nEmbd,
    n_positions: config.nPositions,
    n_ctx: config.nPositions,
    vocab_size: config.vocabSize,
    layer_norm_epsilon: config.layerNormEpsilon,
    bos_token_id: config.bosTokenId,
    eos_token_id: config.eosTokenId,
    tie_word_embeddings: true,
    use_cache: true,
  };
}
