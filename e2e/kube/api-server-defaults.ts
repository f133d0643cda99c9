// Defaulting of builtin objects, as the real API server's defaulters and admission plugins do it
// for the fields the operator and the pod runner touch (pod specs and templates, StatefulSets,
// Services, PVCs, Secrets, Namespaces, PDBs), plus the status a create starts from. Other fields
// are left as sent.

import type { KubeObject } from './api-server-store.js';

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function dflt(o: Obj, key: string, value: unknown): void {
  if (o[key] === undefined || o[key] === null) o[key] = value;
}
const obj = (o: Obj, key: string): Obj => {
  if (!isObject(o[key])) o[key] = {};
  return o[key] as Obj;
};
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObject) : []);

function probe(p: unknown): void {
  if (!isObject(p)) return;
  dflt(p, 'timeoutSeconds', 1);
  dflt(p, 'periodSeconds', 10);
  dflt(p, 'successThreshold', 1);
  dflt(p, 'failureThreshold', 3);
  if (isObject(p.httpGet)) dflt(p.httpGet, 'scheme', 'HTTP');
}

function container(c: Obj): void {
  dflt(c, 'terminationMessagePath', '/dev/termination-log');
  dflt(c, 'terminationMessagePolicy', 'File');
  const image = typeof c.image === 'string' ? c.image : '';
  const tag = /:([^:/@]+)$/.exec(image)?.[1];
  dflt(c, 'imagePullPolicy', !image.includes('@') && (!tag || tag === 'latest') ? 'Always' : 'IfNotPresent');
  dflt(c, 'resources', {});
  for (const p of list(c.ports)) dflt(p, 'protocol', 'TCP');
  for (const p of ['livenessProbe', 'readinessProbe', 'startupProbe']) probe(c[p]);
  for (const e of list(c.env)) {
    const ref = isObject(e.valueFrom) ? e.valueFrom.fieldRef : undefined;
    if (isObject(ref)) dflt(ref, 'apiVersion', 'v1');
  }
}

export function defaultPodSpec(spec: Obj): void {
  dflt(spec, 'restartPolicy', 'Always');
  dflt(spec, 'dnsPolicy', 'ClusterFirst');
  dflt(spec, 'schedulerName', 'default-scheduler');
  dflt(spec, 'securityContext', {});
  dflt(spec, 'terminationGracePeriodSeconds', 30);
  dflt(spec, 'enableServiceLinks', true);
  for (const c of [...list(spec.containers), ...list(spec.initContainers)]) container(c);
  for (const v of list(spec.volumes)) {
    if (isObject(v.secret)) dflt(v.secret, 'defaultMode', 0o644);
    if (isObject(v.configMap)) dflt(v.configMap, 'defaultMode', 0o644);
  }
}

function qosClass(spec: Obj): string {
  const containers = list(spec.containers);
  const part = (r: unknown, k: string): Obj => (isObject(r) && isObject(r[k]) ? r[k] : {});
  const res = containers.map((c) => ({
    req: part(c.resources, 'requests'),
    lim: part(c.resources, 'limits'),
  }));
  const any = res.some(({ req, lim }) => Object.keys(req).length + Object.keys(lim).length > 0);
  if (!any) return 'BestEffort';
  const guaranteed = res.every(({ req, lim }) => {
    return ['cpu', 'memory'].every(
      (k) => lim[k] !== undefined && (req[k] === undefined || req[k] === lim[k]),
    );
  });
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

const base64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

let nextClusterIp = 1;
function allocateClusterIp(): string {
  const n = nextClusterIp++;
  return `10.96.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
}

/**
 * Applies the defaults of a builtin kind in place. `old` is the object being updated (undefined
 * on create): allocated values (a Service's cluster IP) carry over from it.
 */
export function defaultBuiltin(kind: string, o: KubeObject, old: KubeObject | undefined): void {
  const spec = isObject(o.spec) ? o.spec : undefined;
  switch (kind) {
    case 'Pod':
      if (spec) {
        defaultPodSpec(spec);
        dflt(spec, 'serviceAccountName', 'default');
        if (!old) o.status = { phase: 'Pending', qosClass: qosClass(spec) };
      }
      break;
    case 'StatefulSet':
      if (spec) {
        dflt(spec, 'replicas', 1);
        dflt(spec, 'podManagementPolicy', 'OrderedReady');
        dflt(spec, 'revisionHistoryLimit', 10);
        const us = obj(spec, 'updateStrategy');
        dflt(us, 'type', 'RollingUpdate');
        if (us.type === 'RollingUpdate') dflt(obj(us, 'rollingUpdate'), 'partition', 0);
        const retention = obj(spec, 'persistentVolumeClaimRetentionPolicy');
        dflt(retention, 'whenDeleted', 'Retain');
        dflt(retention, 'whenScaled', 'Retain');
        for (const t of list(spec.volumeClaimTemplates)) {
          if (isObject(t.spec)) dflt(t.spec, 'volumeMode', 'Filesystem');
        }
        const template = isObject(spec.template) ? spec.template : undefined;
        if (template && isObject(template.spec)) defaultPodSpec(template.spec);
      }
      if (!old) o.status = { replicas: 0, availableReplicas: 0 };
      break;
    case 'Service':
      if (spec) defaultService(spec, old);
      if (!old) o.status = { loadBalancer: {} };
      break;
    case 'PersistentVolumeClaim':
      if (spec) dflt(spec, 'volumeMode', 'Filesystem');
      if (!old) {
        o.status = { phase: 'Pending' };
        const f = o.metadata.finalizers ?? [];
        if (!f.includes('kubernetes.io/pvc-protection'))
          o.metadata.finalizers = [...f, 'kubernetes.io/pvc-protection'];
      }
      break;
    case 'Secret': {
      dflt(o as Obj, 'type', 'Opaque');
      if (isObject(o.stringData)) {
        const data = obj(o as Obj, 'data');
        for (const [k, v] of Object.entries(o.stringData)) data[k] = base64(String(v));
        delete o.stringData;
      }
      break;
    }
    case 'Namespace':
      o.metadata.labels = { ...o.metadata.labels, 'kubernetes.io/metadata.name': o.metadata.name ?? '' };
      if (!old) {
        o.spec = { finalizers: ['kubernetes'] };
        o.status = { phase: 'Active' };
      }
      break;
    case 'PodDisruptionBudget':
      if (!old) o.status = { disruptionsAllowed: 0, currentHealthy: 0, desiredHealthy: 0, expectedPods: 0 };
      break;
    case 'CustomResourceDefinition':
      if (spec) dflt(obj(spec, 'conversion'), 'strategy', 'None');
      if (!old) o.status = {};
      break;
  }
}

function defaultService(spec: Obj, old: KubeObject | undefined): void {
  dflt(spec, 'type', 'ClusterIP');
  dflt(spec, 'sessionAffinity', 'None');
  for (const p of list(spec.ports)) {
    dflt(p, 'protocol', 'TCP');
    dflt(p, 'targetPort', p.port);
  }
  if (spec.type === 'ExternalName') return;
  const prev = isObject(old?.spec) ? old.spec : undefined;
  for (const k of ['clusterIP', 'clusterIPs', 'ipFamilies', 'ipFamilyPolicy']) {
    if (spec[k] === undefined && prev?.[k] !== undefined) spec[k] = structuredClone(prev[k]);
  }
  dflt(spec, 'clusterIP', allocateClusterIp());
  dflt(spec, 'clusterIPs', [spec.clusterIP]);
  dflt(spec, 'ipFamilies', ['IPv4']);
  dflt(spec, 'ipFamilyPolicy', 'SingleStack');
  dflt(spec, 'internalTrafficPolicy', 'Cluster');
}
