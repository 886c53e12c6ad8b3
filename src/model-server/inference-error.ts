/**
 * Errors of the model server, with Triton's error kinds. The HTTP status comes from the kind in
 * one place (model-server.ts), as Triton >= 24.01 maps it, or 400 for every kind when emulating
 * 21.08 (docs/triton-notes.md, 'Triton 21.08 status codes').
 */
export type ErrorKind = 'INVALID_ARG' | 'NOT_FOUND' | 'UNAVAILABLE' | 'INTERNAL' | 'UNSUPPORTED';

export class InferenceError extends Error {
  override readonly name = 'InferenceError';
  constructor(
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
  }
}

const STATUS: Record<ErrorKind, number> = {
  INVALID_ARG: 400,
  NOT_FOUND: 404,
  UNAVAILABLE: 503,
  INTERNAL: 500,
  UNSUPPORTED: 501,
};

export function statusOf(kind: ErrorKind, legacy: boolean): number {
  return legacy ? 400 : STATUS[kind];
}
