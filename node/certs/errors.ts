// Refusals of the certificate tooling. These never cross an HTTP surface (the tooling runs in
// the CLI, in tests, in the operator and in a node reloading its TLS files), so they are not part
// of node/errors.ts's catalogue.

export const CERT_ERROR_CODES = ['INVALID_CERT_OPTIONS', 'CERT_FILE_EXISTS', 'TLS_MATERIAL_REFUSED'] as const;
export type CertErrorCode = (typeof CERT_ERROR_CODES)[number];

export class CertError extends Error {
  override readonly name = 'CertError';
  constructor(
    readonly code: CertErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function invalid(message: string): CertError {
  return new CertError('INVALID_CERT_OPTIONS', message);
}
