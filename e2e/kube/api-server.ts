// A Kubernetes API server stand-in for tests: the real operator process (and kubectl) talk to it
// through a kubeconfig, over plain HTTP on loopback. One in-memory store, faithful where the
// operator depends on it (see the module list below and the project notes for what is
// simplified). Machines without Docker cannot run a real API server; this is what the e2e suites
// use instead.
//
//   api-server-routes.ts       HTTP: discovery, OpenAPI, resource paths, negotiation, errors
//   api-server-handlers.ts     verbs: get/list/create/update/patch/apply/delete, status, scale
//   api-server-core.ts         the write path: preconditions, defaults, validation, generation
//   api-server-apply.ts        server-side apply and managedFields
//   api-server-patch.ts        merge, JSON and strategic merge patch
//   api-server-watch.ts        watch streams, bookmarks, 410 Gone
//   api-server-store.ts        objects, resourceVersions, watch history
//   api-server-validate.ts     builtin (kubernetes-models) and custom resource validation
//   api-server-crd-schema.ts   CRD structural defaults, value validation, CEL rules
//   api-server-defaults.ts     builtin defaulting
//   api-server-shapes.ts       field tables (pruning, list merge keys)
//   api-server-controllers.ts  garbage collection, namespaces, PVC protection, CRDs
//   api-server-table.ts        Table responses (printer columns)
//   api-server-openapi.ts      /openapi/v3 for kubectl
//   api-server-registry.ts     resource types and discovery
//   api-server-selectors.ts    label and field selectors
//   api-server-events.ts       events.k8s.io/v1 as a view of core/v1 Events
//   api-server-errors.ts       Status errors
//
// Knowingly simplified (beyond what the operator and the pod runner depend on): no authn/authz,
// admission webhooks, quotas or limit ranges; legacy discovery only (no aggregated discovery) and
// no /openapi/v2; lists are always served from the current state (no snapshots for
// resourceVersion or continue tokens); the watch history is per resource and bounded by count,
// not time; status writes change only .status; field selectors take any dotted path; no pod logs,
// exec or eviction, no Endpoints, no Event expiry, no CRD conversion webhooks or validation
// ratcheting; builtin defaulting and semantic validation cover the kinds listed in the registry.

import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { Controllers } from './api-server-controllers.js';
import { ApiCore } from './api-server-core.js';
import { OpenApi } from './api-server-openapi.js';
import { Registry } from './api-server-registry.js';
import { handle, type RouteContext } from './api-server-routes.js';
import { type KubeObject, ObjectStore } from './api-server-store.js';

export type { KubeObject } from './api-server-store.js';

export interface ApiServerOptions {
  /** CustomResourceDefinitions to create at start (default: every document of crds/*.yaml). */
  crds?: object[];
  /** Port on 127.0.0.1 (default: any free one). */
  port?: number;
  /** Namespaces that exist from the start (default: default, kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
  /** Watch events kept per resource; a watch from an older resourceVersion gets 410 (default 1000). */
  watchHistorySize?: number;
  /** How often a watch with allowWatchBookmarks gets a BOOKMARK (default 5 s; the real server: ~1 min). */
  bookmarkIntervalMs?: number;
  /** Delay before the garbage collector and the other loops react to a write (default 5 ms). */
  controllerDelayMs?: number;
  /** The clock of timestamps (default: the real one). */
  now?: () => Date;
  /** One line per request (`GET /api/v1/pods 200 1ms`). */
  log?: (line: string) => void;
}

export interface ApiServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** A kubeconfig file (in a temp dir) for client-node and kubectl; its context's namespace is default. */
  kubeconfigPath: string;
  /** The object store (resourceVersion, compact() to make older versions 410 Gone, raw objects). */
  store: ObjectStore;
  /** An object as the API serves it, by apiVersion and resource (plural), or undefined. */
  read(
    apiVersion: string,
    plural: string,
    namespace: string | undefined,
    name: string,
  ): KubeObject | undefined;
  /** The objects of a resource (all namespaces when namespace is undefined), as the API serves them. */
  list(apiVersion: string, plural: string, namespace?: string): KubeObject[];
  /** Runs the garbage collector and the other loops until nothing changes. */
  settle(): void;
  /** Requests served so far (`GET /api/v1/pods 200 1ms`), newest last (at most 2,000). */
  requests: string[];
  stop(): Promise<void>;
}

const CRD_DIR = fileURLToPath(new URL('../../crds/', import.meta.url));

/** Every document of crds/*.yaml. */
export function loadCrds(dir = CRD_DIR): object[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml') || f.endsWith('.yml'))
    .sort()
    .flatMap((f) => parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as object))
    .filter((d) => d !== null && typeof d === 'object');
}

function kubeconfig(url: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: conflux-stand-in',
    '  cluster:',
    `    server: ${url}`,
    // client-node refuses plain http unless TLS verification is off (there is no TLS at all).
    '    insecure-skip-tls-verify: true',
    'users:',
    '- name: conflux-stand-in',
    '  user: {}',
    'contexts:',
    '- name: conflux-stand-in',
    '  context:',
    '    cluster: conflux-stand-in',
    '    user: conflux-stand-in',
    '    namespace: default',
    'current-context: conflux-stand-in',
    '',
  ].join('\n');
}

const split = (apiVersion: string) => {
  const i = apiVersion.lastIndexOf('/');
  return i < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
};

export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const store = new ObjectStore(options.watchHistorySize ?? 1_000);
  const registry = new Registry();
  const core = new ApiCore(store, registry, options.now ?? (() => new Date()));
  const controllers = new Controllers(core, options.controllerDelayMs ?? 5);
  const system = {
    manager: 'kube-apiserver',
    fieldValidation: 'Strict' as const,
    dryRun: false,
    warnings: [],
  };
  for (const name of options.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    core.write(
      registry.get('', 'v1', 'namespaces')!,
      undefined,
      undefined,
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name } },
      system,
    );
  }
  const crdType = registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')!;
  for (const crd of options.crds ?? loadCrds()) {
    core.write(crdType, undefined, undefined, structuredClone(crd) as KubeObject, {
      ...system,
      fieldValidation: 'Warn',
      warnings: [],
    });
  }

  const requests: string[] = [];
  const watches = new Set<() => void>();
  const ctx: RouteContext = {
    core,
    registry,
    openapi: new OpenApi(registry),
    serverAddress: '127.0.0.1:0',
    bookmarkIntervalMs: options.bookmarkIntervalMs ?? 5_000,
    watches,
    log: (line) => {
      requests.push(line);
      if (requests.length > 2_000) requests.shift();
      options.log?.(line);
    },
  };
  const server: Server = createServer((req, res) => {
    void handle(ctx, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  ctx.serverAddress = `127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'conflux-api-server-'));
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(kubeconfigPath, kubeconfig(url), { mode: 0o600 });

  const typeOf = (apiVersion: string, plural: string) => {
    const { group, version } = split(apiVersion);
    const rt = registry.get(group, version, plural);
    if (!rt) throw new Error(`no resource ${plural} in ${apiVersion}`);
    return rt;
  };
  return {
    url,
    kubeconfigPath,
    store,
    read: (apiVersion, plural, namespace, name) => core.read(typeOf(apiVersion, plural), namespace, name),
    list: (apiVersion, plural, namespace) => {
      const rt = typeOf(apiVersion, plural);
      return store.list(rt.storage, rt.namespaced ? namespace : undefined).map((o) => core.view(rt, o));
    },
    settle: () => {
      for (let i = 0; i < 100 && controllers.runOnce(); i += 1);
    },
    requests,
    stop: async () => {
      controllers.stop();
      for (const stop of [...watches]) stop();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
