import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StopMatcher } from '../../src/generation/stop-sequences.js';

function run(stops: string[], pieces: string[]) {
  const matcher = new StopMatcher(stops);
  const out: string[] = [];
  for (const piece of pieces) {
    const { emit, stopped } = matcher.push(piece);
    out.push(emit);
    if (stopped) return { out, stopped: true };
  }
  out.push(matcher.flush());
  return { out, stopped: false };
}

test('without stop strings, text passes straight through', () => {
  assert.deepEqual(run([], ['a', 'b']), { out: ['a', 'b', ''], stopped: false });
});

test('a stop string spanning tokens is found and excluded from the text', () => {
  assert.deepEqual(run(['\n\n'], [' one', '\n', '\n', 'two']), {
    out: [' one', '', ''],
    stopped: true,
  });
  assert.deepEqual(run(['END'], ['the E', 'N', 'D of it']), {
    out: ['the ', '', ''],
    stopped: true,
  });
});

test('text that only looked like a stop string is released once it is not', () => {
  assert.deepEqual(run(['END'], ['the E', 'N', 'ergy']), {
    out: ['the ', '', 'ENergy', ''],
    stopped: false,
  });
});

test('held-back text is released at the end when no stop string came', () => {
  assert.deepEqual(run(['###'], ['x #', '#']), { out: ['x ', '', '##'], stopped: false });
});

test('the earliest of several stop strings wins', () => {
  assert.deepEqual(run(['c', 'ab'], ['xabc']), { out: ['x'], stopped: true });
});
