// The subject alternative names a Conflux pod of a StatefulSet is reached by: its own pod name
// through the headless Service (peers and the operator), the client Service (clients, any pod may
// answer), and loopback (probes and local tools inside the pod).

import { invalid } from './errors.js';
import { assertDnsNames, unique } from './names.js';

export interface StatefulSetSansOptions {
  /** StatefulSet name; pods are `<name>-<ordinal>`. */
  name: string;
  namespace: string;
  headlessService: string;
  /** Client Service names (default: `[name]`). */
  clientServices?: readonly string[];
  clusterDomain?: string;
  /** Names for every pod 0..replicas-1 (one shared certificate) ... */
  replicas?: number;
  /** ... or for this one pod only. Exactly one of `replicas` and `ordinal` must be given. */
  ordinal?: number;
}

export interface Sans {
  dnsNames: string[];
  ipAddresses: string[];
}

/** Every way to spell `<host>` within the cluster, shortest first. */
function serviceForms(host: string, namespace: string, domain: string): string[] {
  return [host, `${host}.${namespace}`, `${host}.${namespace}.svc`, `${host}.${namespace}.svc.${domain}`];
}

export function statefulSetSans(options: StatefulSetSansOptions): Sans {
  const { name, namespace, headlessService, replicas, ordinal } = options;
  const domain = options.clusterDomain ?? 'cluster.local';
  const clientServices = options.clientServices ?? [name];
  if ((replicas === undefined) === (ordinal === undefined)) {
    throw invalid('statefulSetSans: give exactly one of replicas and ordinal');
  }
  if (replicas !== undefined && !(Number.isInteger(replicas) && replicas >= 1)) {
    throw invalid(`statefulSetSans: replicas must be an integer >= 1, got ${replicas}`);
  }
  if (ordinal !== undefined && !(Number.isInteger(ordinal) && ordinal >= 0)) {
    throw invalid(`statefulSetSans: ordinal must be an integer >= 0, got ${ordinal}`);
  }
  const ordinals = ordinal !== undefined ? [ordinal] : Array.from({ length: replicas ?? 0 }, (_, i) => i);

  const dnsNames: string[] = [];
  for (const i of ordinals) {
    const pod = `${name}-${i}`;
    dnsNames.push(pod, ...serviceForms(`${pod}.${headlessService}`, namespace, domain));
  }
  for (const service of clientServices) dnsNames.push(...serviceForms(service, namespace, domain));
  dnsNames.push('localhost');

  const result = { dnsNames: unique(dnsNames), ipAddresses: ['127.0.0.1'] };
  assertDnsNames(result.dnsNames);
  return result;
}
