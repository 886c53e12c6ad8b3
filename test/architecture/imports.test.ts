/**
 * The floors of src/ and which way imports may point: down only. src/contract/ is the bottom
 * (facts every layer shares); generation/, backends/, model/, kserve/ and tokenizer/ never reach
 * up into http/; the model builder (model/) never depends on the serving backends; and no two
 * modules depend on each other, however long the way round. Imports are read with TypeScript's
 * own pre-processor, so `import type`, re-exports and dynamic `import()` all count.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** dist/test/architecture/ → the repository root. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SRC = join(ROOT, 'src');

/** The folders below http/: none of them may import it. */
const BELOW_HTTP = ['generation', 'backends', 'model', 'kserve', 'tokenizer'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** src-relative path ('http/app.ts') → the src-relative paths it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => relative(SRC, resolve(dirname(file), name)).replace(/\.js$/, '.ts'));
    graph.set(relative(SRC, file), [...new Set(targets)].sort());
  }
  return graph;
}

const folder = (path: string): string => (path.includes('/') ? path.split('/')[0]! : '.');

const graph = importGraph();
const edges = [...graph].flatMap(([from, tos]) => tos.map((to) => ({ from, to })));

test('the import graph is read: every relative import names a file in src/', () => {
  assert.ok(graph.size > 50, `only ${graph.size} files found under ${SRC}`);
  const dangling = edges.filter((e) => !graph.has(e.to)).map((e) => `${e.from} -> ${e.to}`);
  assert.deepEqual(dangling, []);
});

test('nothing below http/ imports http/', () => {
  const up = edges
    .filter((e) => BELOW_HTTP.includes(folder(e.from)) && folder(e.to) === 'http')
    .map((e) => `${e.from} -> ${e.to}`);
  assert.deepEqual(up, []);
});

test('the model builder (model/) does not import the serving backends (backends/)', () => {
  const up = edges
    .filter((e) => folder(e.from) === 'model' && folder(e.to) === 'backends')
    .map((e) => `${e.from} -> ${e.to}`);
  assert.deepEqual(up, []);
});

test('contract/ is the bottom floor: it imports nothing from the rest of src/', () => {
  const up = edges
    .filter((e) => folder(e.from) === 'contract' && folder(e.to) !== 'contract')
    .map((e) => `${e.from} -> ${e.to}`);
  assert.deepEqual(up, []);
});

/** Every elementary cycle found by a depth-first walk, each as a path a -> b -> ... -> a. */
function cycles(g: ReadonlyMap<string, readonly string[]>): string[] {
  const found = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of g.get(node) ?? []) {
      if (state.get(next) === 'open') {
        const loop = stack.slice(stack.indexOf(next));
        // One spelling per cycle: start it at its smallest file name.
        const start = loop.indexOf([...loop].sort()[0]!);
        const turned = [...loop.slice(start), ...loop.slice(0, start)];
        found.add([...turned, turned[0]].join(' -> '));
      } else if (state.get(next) === undefined) {
        visit(next);
      }
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...g.keys()].sort()) if (state.get(node) === undefined) visit(node);
  return [...found].sort();
}

test('the cycle finder reports a cycle by its path', () => {
  const g = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  assert.deepEqual(cycles(g), ['a.ts -> b.ts -> c.ts -> a.ts']);
  assert.deepEqual(cycles(new Map([['a.ts', ['b.ts']]])), []);
});

test('no import cycle anywhere in src/', () => {
  assert.deepEqual(cycles(graph), []);
});
