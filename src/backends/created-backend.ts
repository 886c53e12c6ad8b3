/**
 * What creating a backend from configuration yields: the backend, not yet initialised, and what
 * the gateway should say about its model. Its own module so that each backend's factory and
 * create-backend.ts depend on it, not on one another.
 */
import type { Backend } from './backend.js';

/** Facts about the served model that its files cannot tell (e.g. the default random weights). */
export interface ModelNotice {
  readonly randomWeights: boolean;
  /** Said in the log at start and in GET /info. */
  readonly notice?: string;
}

export interface CreatedBackend {
  readonly backend: Backend;
  readonly model: ModelNotice;
}
