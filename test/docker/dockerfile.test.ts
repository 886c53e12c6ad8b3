import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCKERFILE = readFileSync(`${ROOT}Dockerfile`, 'utf8');
/** The base image is an ARG so it can be pinned by digest at build time. */
const FROM = 'FROM $' + '{NODE_IMAGE}';

/** Instructions with their continuation lines joined and comments dropped. */
function instructions(): string[] {
  return DOCKERFILE.replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

test('every file the build copies from the context exists and is let through by .dockerignore', () => {
  const fromContext = instructions()
    .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
    .flatMap((l) => l.split(/\s+/).slice(1, -1));
  assert.deepEqual(fromContext, [
    'package.json',
    'package-lock.json',
    '.npmrc',
    'tsconfig.json',
    'tsconfig.web.json',
    'scripts/copy-web-assets.mjs',
    'src',
    'web',
  ]);
  for (const source of fromContext) assert.ok(existsSync(`${ROOT}${source}`), `${source} exists`);
  // .dockerignore is an allow-list: '*' then exactly the sources above.
  const ignore = readFileSync(`${ROOT}.dockerignore`, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
  const folders = ['src', 'web'];
  assert.deepEqual(ignore, [
    '*',
    ...fromContext.map((s) => `!${folders.includes(s) ? `${s}/` : s}`),
  ]);
});

test('two stages, production dependencies only at run time, non-root, node as PID 1, a HEALTHCHECK on /healthz', () => {
  const lines = instructions();
  assert.deepEqual(
    lines.filter((l) => l.startsWith('FROM ')),
    [`${FROM} AS build`, FROM],
  );
  assert.ok(lines.some((l) => l.startsWith('RUN ') && l.includes('npm prune --omit=dev')));
  const runtime = lines.slice(lines.indexOf(FROM));
  assert.deepEqual(
    runtime.filter((l) => l.startsWith('COPY ')),
    [
      'COPY --from=build /app/package.json ./package.json',
      'COPY --from=build /app/node_modules ./node_modules',
      'COPY --from=build /app/dist/src ./dist/src',
      'COPY --from=build /app/dist/web ./dist/web',
    ],
  );
  assert.ok(runtime.includes('USER 8888:8888'));
  assert.ok(runtime.some((l) => l.includes('useradd --uid 8888 --gid 8888')));
  const cmd = runtime.find((l) => l.startsWith('CMD '));
  assert.deepEqual(JSON.parse(cmd!.slice(4)), ['node', 'dist/src/cli.js', 'serve']);
  const health = runtime.find((l) => l.startsWith('HEALTHCHECK '));
  assert.match(health!, /CMD \["node", "-e", ".*\/healthz.*"\]$/);
});
