/**
 * Stable codes for translation failures. The translator is total over IR that passes validate(); these
 * codes mark inputs that break that contract (a caller that skipped validation, or bad options), so they
 * point at a bug upstream rather than at user input. Codes are never renamed or reused.
 */
export const TranslateErrorCode = {
  /** The options object is malformed, e.g. an unknown flavour from the command line. */
  InvalidOptions: 'SKEIN_XDS_TRANSLATE_INVALID_OPTIONS',
  /** Two resources of one type got the same name: the IR had duplicate names (validate() reports those). */
  DuplicateResource: 'SKEIN_XDS_TRANSLATE_DUPLICATE_RESOURCE',
} as const;
export type TranslateErrorCode = (typeof TranslateErrorCode)[keyof typeof TranslateErrorCode];

export class TranslateError extends Error {
  override readonly name = 'TranslateError';
  readonly code: TranslateErrorCode;

  constructor(code: TranslateErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
