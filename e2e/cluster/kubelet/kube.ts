// API helpers shared by the kubelet's parts (all calls go through @kubernetes/client-node).

import { ApiException, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

export const isNotFound = (err: unknown): boolean => err instanceof ApiException && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof ApiException && err.code === 409;
export const isAlreadyExists = isConflict;

export function errText(err: unknown): string {
  if (err instanceof ApiException) {
    let body = String(err.body);
    try {
      body = (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      // not JSON
    }
    return `HTTP ${err.code}: ${body.slice(0, 400)}`;
  }
  return err instanceof Error ? err.message : String(err);
}

/** The object, or null when it does not exist. */
export async function readIfExists<T>(get: () => Promise<T>): Promise<T | null> {
  try {
    return await get();
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

export function loadKubeConfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** Request options for a strategic merge patch (what the kubelet sends for statuses). */
export const STRATEGIC_MERGE = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
export const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
