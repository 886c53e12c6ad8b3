import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MIN_PREFILL_CHUNK_TOKENS, PrefillBudget } from '../../src/generation/prefill-budget.js';

test('the whole chunk until a decode is measured, and for a step that decodes for nobody', () => {
  const budget = new PrefillBudget({ maxTokens: 64, stepSlowdown: 5 });
  assert.equal(budget.tokens(true), 64, 'nothing measured yet');
  budget.observe(64, undefined);
  assert.equal(budget.tokens(true), 64, 'a backend that reports no costs');
  budget.observe(64, { prefillMs: 640, decodeMs: 0 });
  assert.equal(budget.tokens(true), 64, 'no decode measured yet');
  budget.observe(8, { prefillMs: 80, decodeMs: 20 });
  assert.equal(budget.tokens(false), 64, 'no decode to protect in the step to come');
  assert.equal(budget.tokens(true), 16, 'room 5 × 20 - 20 at 10 ms a token… never below 16');
  // A step without decodes in between (say, every stream had just ended) changes nothing: the
  // next step that decodes is judged from the last one that did.
  budget.observe(16, { prefillMs: 160, decodeMs: 0 });
  assert.equal(budget.tokens(true), 16);
});

test('the chunk fills the room the slowdown leaves beside the decodes, at the measured cost per token', () => {
  const budget = new PrefillBudget({ maxTokens: 64, stepSlowdown: 5 });
  // 20 ms of decodes, 64 prompt tokens for 128 ms: 2 ms a token; room 5 × 20 - 20 = 80 ms.
  budget.observe(64, { prefillMs: 128, decodeMs: 20 });
  assert.equal(budget.tokens(true), 40);
  // Tokens get dearer as the prompt's context grows (4 ms now; smoothed to 3): 80 / 3.
  budget.observe(40, { prefillMs: 160, decodeMs: 20 });
  assert.equal(budget.tokens(true), 26);
  // Cheap steps give the room back, never beyond maxTokens.
  for (let i = 0; i < 8; i++) budget.observe(10, { prefillMs: 1, decodeMs: 20 });
  assert.equal(budget.tokens(true), 64);
});

test('decodes that fill the room leave the smallest chunk, never less, and never more than the maximum', () => {
  const budget = new PrefillBudget({ maxTokens: 64, stepSlowdown: 5 });
  budget.observe(64, { prefillMs: 128, decodeMs: 20 });
  // A long context's decode now takes the whole room: the prompt still moves.
  budget.observe(16, { prefillMs: 40, decodeMs: 150 });
  assert.equal(budget.tokens(true), MIN_PREFILL_CHUNK_TOKENS);
  const small = new PrefillBudget({ maxTokens: 8, stepSlowdown: 5 });
  small.observe(8, { prefillMs: 80, decodeMs: 150 });
  assert.equal(small.tokens(true), 8, 'a maximum below the smallest chunk stays the maximum');
});

test('the usual gap is the fastest decode of the recent steps, and old ones are forgotten', () => {
  const budget = new PrefillBudget({ maxTokens: 1000, stepSlowdown: 5 });
  budget.observe(10, { prefillMs: 10, decodeMs: 10 });
  budget.observe(10, { prefillMs: 10, decodeMs: 40 });
  // Room 5 × 10 - 40 = 10 ms at 1 ms a token... but never below the smallest chunk.
  assert.equal(budget.tokens(true), MIN_PREFILL_CHUNK_TOKENS);
  for (let i = 0; i < 64; i++) budget.observe(10, { prefillMs: 10, decodeMs: 40 });
  // The 10 ms decode left the window: room 5 × 40 - 40 = 160 ms.
  assert.equal(budget.tokens(true), 160);
});

test('slowdown 0 turns the sizing off', () => {
  const budget = new PrefillBudget({ maxTokens: 64, stepSlowdown: 0 });
  budget.observe(64, { prefillMs: 6400, decodeMs: 20 });
  assert.equal(budget.tokens(true), 64);
});
