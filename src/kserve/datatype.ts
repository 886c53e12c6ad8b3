/**
 * KServe v2 tensor datatypes and their fixed element sizes (KServe v2 spec, "Tensor Data Types").
 * BYTES is variable-length and FP16/BF16 have no JSON form in Triton (docs/triton-notes.md,
 * 'Tensor data and datatypes').
 */

export type FixedDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'BF16'
  | 'FP32'
  | 'FP64';

const ELEMENT_BYTES: Readonly<Record<FixedDatatype, number>> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  BF16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
};

export function isFixedDatatype(name: string): name is FixedDatatype {
  return Object.hasOwn(ELEMENT_BYTES, name);
}

export function elementBytes(datatype: FixedDatatype): number {
  return ELEMENT_BYTES[datatype];
}

/** Triton's config.pbtxt / config JSON names (TYPE_INT32) ↔ protocol names (INT32). */
export function datatypeFromConfigType(configType: string): string {
  if (configType === 'TYPE_STRING') return 'BYTES';
  return configType.startsWith('TYPE_') ? configType.slice('TYPE_'.length) : configType;
}

export function configTypeFromDatatype(datatype: string): string {
  return datatype === 'BYTES' ? 'TYPE_STRING' : `TYPE_${datatype}`;
}

/** Product of a concrete shape; -1 or a non-integer makes it invalid (returns undefined). */
export function elementCount(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
  }
  return n;
}
