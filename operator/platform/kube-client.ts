// Typed Kubernetes API clients whose every request is bounded: client-node sets no timeout, so a
// request to an API server that stopped answering would hang a reconcile pass (or a Lease renewal)
// forever. Each request gets an AbortSignal that fires after `timeoutMs` and fails with an error
// naming the request. A counter hook sees every request (the API-requests-per-resync measure).
// Watches (informers) are long-lived by design and do not go through here.

import {
  type Configuration,
  createConfiguration,
  type KubeConfig,
  type RequestContext,
  type ResponseContext,
  ServerConfiguration,
  setHeaderMiddleware,
  wrapHttpLibrary,
} from '@kubernetes/client-node';

/** How long one API request may take by default (client-go's default is none; kubectl's 0 too). */
export const API_TIMEOUT_MS = 15_000;

export interface BoundedClientOptions {
  /** Abort a request after this long (default API_TIMEOUT_MS). */
  timeoutMs?: number;
  /** Called once per request, before it is sent. */
  onRequest?: (method: string, url: string) => void;
}

/** An API request that did not answer in time. */
export class ApiTimeoutError extends Error {
  override readonly name = 'ApiTimeoutError';
}

/** `new Api(...)` as KubeConfig.makeApiClient builds it, with every request bounded. */
export function boundedApiClient<T>(
  kubeConfig: KubeConfig,
  Api: new (configuration: Configuration) => T,
  o: BoundedClientOptions = {},
): T {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const timeoutMs = o.timeoutMs ?? API_TIMEOUT_MS;
  const inner = createConfiguration().httpApi;
  const httpApi = wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const method = String(request.getHttpMethod());
      o.onRequest?.(method, request.getUrl());
      const signal = AbortSignal.timeout(timeoutMs);
      const given = request.getSignal();
      request.setSignal(given ? AbortSignal.any([given, signal]) : signal);
      try {
        return await inner.send(request).toPromise();
      } catch (err) {
        if (signal.aborted) {
          const path = new URL(request.getUrl()).pathname;
          throw new ApiTimeoutError(`Kubernetes API ${method} ${path} did not answer within ${timeoutMs} ms`);
        }
        throw err;
      }
    },
  });
  return new Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kubeConfig },
      httpApi,
      middleware: [setHeaderMiddleware('User-Agent', 'conflux-operator')],
    }),
  );
}
