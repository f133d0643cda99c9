// Minimal OpenAPI v3 documents, enough for kubectl: the root (/openapi/v3) lists one document
// per group-version; each document has the item paths of its resources, whose PATCH operations
// carry x-kubernetes-group-version-kind and the fieldValidation parameter (so kubectl leaves
// field validation to the server) and list the patch content types the server takes (no
// strategic merge for custom resources, so `kubectl apply` sends them a JSON merge patch).
// Component schemas are the CRD schemas, and a bare object for builtins. /openapi/v2 is not
// served (kubectl works without it).

import { createHash } from 'node:crypto';
import { notFoundPath, type Registry, type ResourceType } from './api-server-registry.js';

const gvPath = (t: { group: string; version: string }) =>
  t.group ? `apis/${t.group}/${t.version}` : `api/${t.version}`;

const schemaName = (t: ResourceType) =>
  `${(t.group || 'core').split('.').reverse().join('.')}.${t.version}.${t.kind}`;

function documentFor(types: ResourceType[]): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  const param = (name: string) => ({ name, in: 'query', schema: { type: 'string', uniqueItems: true } });
  for (const t of types) {
    const gvk = { group: t.group, version: t.version, kind: t.kind };
    const ref = { $ref: `#/components/schemas/${schemaName(t)}` };
    const json = { schema: ref };
    const patchTypes = [
      'application/json-patch+json',
      'application/merge-patch+json',
      'application/apply-patch+yaml',
    ];
    const op = (action: string, extra: Record<string, unknown> = {}) => ({
      operationId: `${action}${t.kind}`,
      'x-kubernetes-action': action,
      'x-kubernetes-group-version-kind': gvk,
      parameters: [
        param('dryRun'),
        param('fieldManager'),
        param('fieldValidation'),
        ...(action === 'patch' ? [param('force')] : []),
      ],
      responses: { '200': { description: 'OK', content: { 'application/json': json } } },
      ...extra,
    });
    const base = `/${gvPath(t)}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}`;
    paths[base] = { post: op('post', { requestBody: { content: { '*/*': json } } }) };
    paths[`${base}/{name}`] = {
      get: op('get'),
      put: op('put', { requestBody: { content: { '*/*': json } } }),
      patch: op('patch', {
        requestBody: {
          content: Object.fromEntries(patchTypes.map((c) => [c, { schema: { type: 'object' } }])),
        },
      }),
    };
    schemas[schemaName(t)] = {
      ...(t.crd ? t.crd.schema : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
      'x-kubernetes-group-version-kind': [gvk],
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0' },
    paths,
    components: { schemas },
  };
}

export class OpenApi {
  constructor(private readonly registry: Registry) {}

  private byGroupVersion(): Map<string, ResourceType[]> {
    const out = new Map<string, ResourceType[]>();
    for (const t of this.registry.all()) {
      const k = gvPath(t);
      out.set(k, [...(out.get(k) ?? []), t]);
    }
    return out;
  }

  root(): Record<string, unknown> {
    const paths: Record<string, unknown> = {};
    for (const [k, types] of this.byGroupVersion()) {
      const hash = createHash('sha256')
        .update(JSON.stringify(documentFor(types)))
        .digest('hex')
        .slice(0, 32)
        .toUpperCase();
      paths[k] = { serverRelativeURL: `/openapi/v3/${k}?hash=${hash}` };
    }
    return { paths };
  }

  /** The document of `api/v1` or `apis/<group>/<version>`. */
  document(path: string): Record<string, unknown> {
    const types = this.byGroupVersion().get(path);
    if (!types) throw notFoundPath();
    return documentFor(types);
  }
}
