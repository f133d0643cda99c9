// Kubernetes-style failures of the API stand-in: every error a handler raises is an ApiError,
// and is answered with a meta/v1 `Status` body carrying the same reason, code, message and
// details as the real API server would send.

export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Invalid'
  | 'Expired'
  | 'MethodNotAllowed'
  | 'NotAcceptable'
  | 'UnsupportedMediaType'
  | 'Timeout'
  | 'InternalError';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: StatusReason;
  details?: StatusDetails;
  code: number;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: number,
    readonly reason: StatusReason,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
  }

  toStatus(): StatusBody {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** How errors name a resource: `pods` for the core group, `confluxclusters.conflux.io` otherwise. */
export interface ResourceRef {
  group: string;
  plural: string;
  kind: string;
}

export const qualified = (r: ResourceRef) => (r.group ? `${r.plural}.${r.group}` : r.plural);
const refDetails = (r: ResourceRef, name: string): StatusDetails => ({
  name,
  ...(r.group ? { group: r.group } : {}),
  kind: r.plural,
});

export const notFound = (r: ResourceRef, name: string) =>
  new ApiError(404, 'NotFound', `${qualified(r)} "${name}" not found`, refDetails(r, name));

export const alreadyExists = (r: ResourceRef, name: string) =>
  new ApiError(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, refDetails(r, name));

export const conflict = (r: ResourceRef, name: string, why: string) =>
  new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`,
    refDetails(r, name),
  );

export const STALE_OBJECT =
  'the object has been modified; please apply your changes to the latest version and try again';

/** 422 Invalid, with the message layout of the real server (`X is invalid: [a, b]`). */
export function invalid(r: ResourceRef, name: string, causes: StatusCause[]): ApiError {
  const parts = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : (c.message ?? '')));
  const joined = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  const kindName = r.group ? `${r.kind}.${r.group}` : r.kind;
  return new ApiError(422, 'Invalid', `${kindName} "${name}" is invalid: ${joined}`, {
    name,
    ...(r.group ? { group: r.group } : {}),
    kind: r.kind,
    causes,
  });
}

export const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);
export const forbidden = (message: string) => new ApiError(403, 'Forbidden', message);
export const expired = (message: string) => new ApiError(410, 'Expired', message);
export const methodNotAllowed = () =>
  new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
export const unsupportedMediaType = (contentType: string, accepted: string[]) =>
  new ApiError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format (${contentType || 'none'}) - accepted media types include: ${accepted.join(', ')}`,
  );
export const notAcceptable = (accepted: string[]) =>
  new ApiError(406, 'NotAcceptable', `only the following media types are accepted: ${accepted.join(', ')}`);
export const internal = (message: string) =>
  new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);

/** A cause in the wording of k8s.io/apimachinery field errors. */
export const fieldCause = (
  field: string,
  type: 'Invalid' | 'Required' | 'Forbidden' | 'Unsupported' | 'Duplicate' | 'TooLong' | 'NotSupported',
  detail: string,
  value?: unknown,
): StatusCause => {
  const reason = {
    Invalid: 'FieldValueInvalid',
    Required: 'FieldValueRequired',
    Forbidden: 'FieldValueForbidden',
    Unsupported: 'FieldValueNotSupported',
    NotSupported: 'FieldValueNotSupported',
    Duplicate: 'FieldValueDuplicate',
    TooLong: 'FieldValueTooLong',
  }[type];
  const head = {
    Invalid: 'Invalid value',
    Required: 'Required value',
    Forbidden: 'Forbidden',
    Unsupported: 'Unsupported value',
    NotSupported: 'Unsupported value',
    Duplicate: 'Duplicate value',
    TooLong: 'Too long',
  }[type];
  const shown =
    value === undefined
      ? ''
      : `: ${typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value)}`;
  return { reason, field, message: `${head}${shown}${detail ? `: ${detail}` : ''}` };
};
