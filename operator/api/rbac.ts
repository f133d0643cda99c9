// What the operator may do in the API server: the least-privilege ClusterRole rules, and builders
// for the ClusterRole, its ServiceAccount and the binding between them. `npm run generate` writes
// them to config/rbac/ (see manifests.ts). Add a rule here only together with the code that needs it.

import { GROUP } from './cluster.js';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export const DEFAULT_OPERATOR_NAMESPACE = 'conflux-system';
export const DEFAULT_OPERATOR_NAME = 'conflux-operator';

export const OPERATOR_LABELS: Readonly<Record<string, string>> = {
  'app.kubernetes.io/name': 'conflux-operator',
  'app.kubernetes.io/part-of': 'conflux',
};

const OWNED = ['create', 'get', 'list', 'watch', 'update', 'patch', 'delete'];

/** The ClusterRole rules of the operator (it watches ConfluxClusters in every namespace). */
export function operatorRules(): PolicyRule[] {
  return [
    {
      // Reads the user's resources; update/patch for finalizers and annotations only, never spec.
      apiGroups: [GROUP],
      resources: ['confluxclusters', 'confluxbackups'],
      verbs: ['get', 'list', 'watch', 'update', 'patch'],
    },
    {
      apiGroups: [GROUP],
      resources: ['confluxclusters/status', 'confluxbackups/status'],
      verbs: ['get', 'update', 'patch'],
    },
    // Owned objects point at their cluster with blockOwnerDeletion (foreground deletion waits for
    // them); the API server allows that only to who may set the owner's finalizers.
    { apiGroups: [GROUP], resources: ['confluxclusters/finalizers'], verbs: ['update'] },
    // What a cluster owns.
    { apiGroups: ['apps'], resources: ['statefulsets'], verbs: OWNED },
    { apiGroups: [''], resources: ['services', 'secrets'], verbs: OWNED },
    { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: OWNED },
    { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: OWNED },
    // The StatefulSet controller creates the pods (updateStrategy OnDelete); the operator deletes
    // one at a time to roll a new pod template through the members.
    { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'delete'] },
    // A member's volume is deleted after scale-down when storage.reclaimPolicy is Delete.
    { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['get', 'list', 'watch', 'delete'] },
    { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    // Leader election between operator replicas.
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ];
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}

export interface ClusterRole {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'ClusterRole';
  metadata: ObjectMeta;
  rules: PolicyRule[];
}

export interface ServiceAccount {
  apiVersion: 'v1';
  kind: 'ServiceAccount';
  metadata: ObjectMeta & { namespace: string };
}

export interface ClusterRoleBinding {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'ClusterRoleBinding';
  metadata: ObjectMeta;
  roleRef: { apiGroup: 'rbac.authorization.k8s.io'; kind: 'ClusterRole'; name: string };
  subjects: { kind: 'ServiceAccount'; name: string; namespace: string }[];
}

export interface OperatorRbacOptions {
  /** Namespace the operator runs in (its ServiceAccount's namespace). */
  namespace?: string;
  serviceAccountName?: string;
  clusterRoleName?: string;
  clusterRoleBindingName?: string;
  labels?: Record<string, string>;
}

type ResolvedOptions = Required<OperatorRbacOptions>;

function resolve(options: OperatorRbacOptions = {}): ResolvedOptions {
  const serviceAccountName = options.serviceAccountName ?? DEFAULT_OPERATOR_NAME;
  const clusterRoleName = options.clusterRoleName ?? DEFAULT_OPERATOR_NAME;
  return {
    namespace: options.namespace ?? DEFAULT_OPERATOR_NAMESPACE,
    serviceAccountName,
    clusterRoleName,
    clusterRoleBindingName: options.clusterRoleBindingName ?? clusterRoleName,
    labels: { ...OPERATOR_LABELS, ...options.labels },
  };
}

export function operatorClusterRole(options?: OperatorRbacOptions): ClusterRole {
  const o = resolve(options);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: o.clusterRoleName, labels: { ...o.labels } },
    rules: operatorRules(),
  };
}

export function operatorServiceAccount(options?: OperatorRbacOptions): ServiceAccount {
  const o = resolve(options);
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name: o.serviceAccountName, namespace: o.namespace, labels: { ...o.labels } },
  };
}

export function operatorClusterRoleBinding(options?: OperatorRbacOptions): ClusterRoleBinding {
  const o = resolve(options);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: o.clusterRoleBindingName, labels: { ...o.labels } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: o.clusterRoleName },
    subjects: [{ kind: 'ServiceAccount', name: o.serviceAccountName, namespace: o.namespace }],
  };
}

export interface Role {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'Role';
  metadata: ObjectMeta & { namespace: string };
  rules: PolicyRule[];
}

export interface RoleBinding {
  apiVersion: 'rbac.authorization.k8s.io/v1';
  kind: 'RoleBinding';
  metadata: ObjectMeta & { namespace: string };
  roleRef: { apiGroup: 'rbac.authorization.k8s.io'; kind: 'Role'; name: string };
  subjects: { kind: 'ServiceAccount'; name: string; namespace: string }[];
}

/**
 * Namespaced mode, for an operator that watches one namespace (`--namespace`, with its Lease in
 * that namespace too): the same rules as a Role there, so it can read or change nothing outside
 * it. Every resource the rules name is namespaced; the CRDs stay cluster-wide, installed once.
 */
export function operatorRole(watchNamespace: string, options?: OperatorRbacOptions): Role {
  const o = resolve(options);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: o.clusterRoleName, namespace: watchNamespace, labels: { ...o.labels } },
    rules: operatorRules(),
  };
}

export function operatorRoleBinding(watchNamespace: string, options?: OperatorRbacOptions): RoleBinding {
  const o = resolve(options);
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: o.clusterRoleBindingName, namespace: watchNamespace, labels: { ...o.labels } },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: o.clusterRoleName },
    subjects: [{ kind: 'ServiceAccount', name: o.serviceAccountName, namespace: o.namespace }],
  };
}
