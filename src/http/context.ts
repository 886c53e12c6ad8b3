/** Facts about the served model that its files cannot tell (e.g. the default random weights). */
export interface ModelNotice {
  readonly randomWeights: boolean;
  /** Said in the log at start and in GET /info. */
  readonly notice?: string;
}
