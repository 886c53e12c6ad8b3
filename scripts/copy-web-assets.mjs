#!/usr/bin/env node
// Part of `npm run build`: tsc compiles web/**/*.ts to dist/web; this copies the page's other
// files (HTML, CSS) beside the scripts, so dist/web/playground is the whole page.
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
cpSync(join(ROOT, 'web'), join(ROOT, 'dist/web'), {
  recursive: true,
  filter: (source) => !source.endsWith('.ts'),
});
