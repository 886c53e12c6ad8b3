/**
 * Facts about the model that every layer shares: the serving variants the builder makes and
 * GPT-2's fixed sizes. The bottom floor: imports nothing from the rest of src/.
 */

/** The serving variants `model build` makes; each is driven as src/contract/signature.ts says. */
export const MODEL_VARIANTS = ['logits', 'last', 'next-token', 'kv'] as const;
export type ModelVariant = (typeof MODEL_VARIANTS)[number];

/** GPT-2's BPE vocabulary size; `<|endoftext|>` (50256) is both BOS and EOS. */
export const GPT2_VOCAB_SIZE = 50257;
/** GPT-2's n_positions. Not visible in a model's interface, so backends assume it unless told. */
export const GPT2_CONTEXT_LENGTH = 1024;
/** `<|endoftext|>`: GPT-2's only special token, used as BOS and EOS. */
export const GPT2_EOS_TOKEN_ID = 50256;
/** The layer-norm epsilon of every published GPT-2 size. */
export const GPT2_LAYER_NORM_EPSILON = 1e-5;
