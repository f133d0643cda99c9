// Watches of the single Secrets and ConfigMaps that a node's pods mount, as the kubelet's
// Watch-based change detection keeps them: one list+watch per object with a metadata.name field
// selector (the Node authorizer allows exactly those for objects its pods reference), shared and
// reference-counted across pods. A change triggers an immediate volume resync; the periodic
// resync stays as the safety net (and is all there is if a watch cannot be opened).

import { type CoreV1Api, type KubeConfig, ListWatch, type V1Pod, Watch } from '@kubernetes/client-node';
import { errText } from './kube.js';

export type ObjectKind = 'secrets' | 'configmaps';
export interface ObjectRef {
  kind: ObjectKind;
  namespace: string;
  name: string;
}

const keyOf = (r: ObjectRef) => `${r.kind}/${r.namespace}/${r.name}`;

/** The Secrets and ConfigMaps a pod's volumes (projected ones included) are made from. */
export function volumeRefs(pod: V1Pod): ObjectRef[] {
  const namespace = pod.metadata?.namespace ?? 'default';
  const refs = new Map<string, ObjectRef>();
  const add = (kind: ObjectKind, name: string | undefined) => {
    if (name) refs.set(keyOf({ kind, namespace, name }), { kind, namespace, name });
  };
  for (const v of pod.spec?.volumes ?? []) {
    add('secrets', v.secret?.secretName);
    add('configmaps', v.configMap?.name);
    for (const s of v.projected?.sources ?? []) {
      add('secrets', s.secret?.name);
      add('configmaps', s.configMap?.name);
    }
  }
  return [...refs.values()];
}

export class ObjectWatches {
  private readonly watches = new Map<string, { count: number; informer: ListWatch<never> }>();
  private refused = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly core: CoreV1Api,
    private readonly changed: (ref: ObjectRef) => void,
    private readonly log: (line: string) => void,
  ) {}

  retain(refs: ObjectRef[]): void {
    for (const ref of refs) {
      const key = keyOf(ref);
      const w = this.watches.get(key);
      if (w) {
        w.count++;
        continue;
      }
      const fieldSelector = `metadata.name=${ref.name}`;
      const list = () =>
        ref.kind === 'secrets'
          ? this.core.listNamespacedSecret({ namespace: ref.namespace, fieldSelector })
          : this.core.listNamespacedConfigMap({ namespace: ref.namespace, fieldSelector });
      const informer = new ListWatch<never>(
        `/api/v1/namespaces/${ref.namespace}/${ref.kind}`,
        new Watch(this.kc),
        list as never,
        false,
        undefined,
        fieldSelector,
      );
      let started = false;
      const onChange = () => {
        if (started) this.changed(ref);
      };
      informer.on('add', onChange);
      informer.on('update', onChange);
      informer.on('delete', onChange);
      informer.on('error', (err) => {
        if (!this.watches.has(key) || this.watches.get(key)?.informer !== informer) return;
        if (!this.refused) this.log(`watching ${key} failed (${errText(err)}); periodic resync only`);
        this.refused = true;
        setTimeout(() => {
          if (this.watches.get(key)?.informer === informer) void informer.start().catch(() => {});
        }, 5000).unref();
      });
      this.watches.set(key, { count: 1, informer });
      void informer
        .start()
        .then(() => {
          started = true;
        })
        .catch(() => {});
    }
  }

  release(refs: ObjectRef[]): void {
    for (const ref of refs) {
      const key = keyOf(ref);
      const w = this.watches.get(key);
      if (!w) continue;
      if (--w.count > 0) continue;
      this.watches.delete(key);
      void w.informer.stop();
    }
  }

  async stop(): Promise<void> {
    const all = [...this.watches.values()];
    this.watches.clear();
    await Promise.all(all.map((w) => w.informer.stop()));
  }
}
