/**
 * The tokenizer as the routes use it: the cheap calls (the token-count bound, one token's text)
 * run inline, encoding goes through the worker pool so a large text never blocks the event loop,
 * and the pool's own refusals become the gateway's errors.
 */
import { GatewayError } from '../contract/errors.js';
import type { Gpt2Tokenizer } from './gpt2-tokenizer.js';
import { type TokenizerPool, TokenizerPoolError } from './tokenizer-pool.js';

export class PromptTokenizer {
  constructor(
    readonly tokenizer: Gpt2Tokenizer,
    readonly pool: TokenizerPool,
  ) {}

  /** A lower bound of encode(text).length, far cheaper than encoding (see token-bound.ts). */
  minTokenCount(text: string): number {
    return this.tokenizer.minTokenCount(text);
  }

  tokenText(id: number): string {
    return this.tokenizer.tokenText(id);
  }

  async encode(text: string): Promise<number[]> {
    try {
      return await this.pool.encode(text);
    } catch (err) {
      throw asGatewayError(err);
    }
  }
}

function asGatewayError(err: unknown): unknown {
  if (!(err instanceof TokenizerPoolError)) return err;
  switch (err.code) {
    case 'TOKENIZER_BUSY':
      // Capacity, like a full generation queue: the client may retry shortly.
      return new GatewayError('QUEUE_FULL', err.message, { cause: err });
    case 'TOKENIZER_CLOSED':
      return new GatewayError('SHUTTING_DOWN', undefined, { cause: err });
    case 'TOKENIZER_WORKER_FAILED':
      // The pool replaces a dead worker, so a retry is likely to succeed; the cause is logged.
      return new GatewayError('TOKENIZER_UNAVAILABLE', undefined, { cause: err });
  }
}
