import {
  ClusterRole,
  ClusterRoleBinding,
  Role,
  RoleBinding,
} from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_OPERATOR_NAME,
  DEFAULT_OPERATOR_NAMESPACE,
  operatorClusterRole,
  operatorClusterRoleBinding,
  operatorRole,
  operatorRoleBinding,
  operatorRules,
  operatorServiceAccount,
} from './rbac.js';

/** group/resource -> verbs, for readable assertions. */
function grants(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const rule of operatorRules()) {
    for (const g of rule.apiGroups) {
      for (const r of rule.resources) {
        const key = `${g || 'core'}/${r}`;
        const verbs = out.get(key) ?? new Set<string>();
        for (const v of rule.verbs) verbs.add(v);
        out.set(key, verbs);
      }
    }
  }
  return out;
}

const sorted = (s: Set<string> | undefined) => [...(s ?? [])].sort();

describe('operator RBAC', () => {
  it('grants exactly what the operator needs', () => {
    const g = grants();
    const owned = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    expect(Object.fromEntries([...g].map(([k, v]) => [k, sorted(v)]))).toEqual({
      'conflux.io/confluxclusters': ['get', 'list', 'patch', 'update', 'watch'],
      'conflux.io/confluxbackups': ['get', 'list', 'patch', 'update', 'watch'],
      'conflux.io/confluxclusters/status': ['get', 'patch', 'update'],
      'conflux.io/confluxbackups/status': ['get', 'patch', 'update'],
      'conflux.io/confluxclusters/finalizers': ['update'],
      'apps/statefulsets': owned,
      'core/services': owned,
      'core/secrets': owned,
      'policy/poddisruptionbudgets': owned,
      'networking.k8s.io/networkpolicies': owned,
      'core/pods': ['delete', 'get', 'list', 'watch'],
      'core/persistentvolumeclaims': ['delete', 'get', 'list', 'watch'],
      'events.k8s.io/events': ['create', 'patch'],
      'coordination.k8s.io/leases': ['create', 'get', 'update'],
    });
  });

  it('never uses wildcards or escalation verbs', () => {
    for (const rule of operatorRules()) {
      for (const x of [...rule.apiGroups, ...rule.resources, ...rule.verbs]) expect(x).not.toBe('*');
      for (const v of ['escalate', 'bind', 'impersonate', 'deletecollection'])
        expect(rule.verbs).not.toContain(v);
    }
  });

  it('builds valid objects with default names', () => {
    const role = operatorClusterRole();
    const sa = operatorServiceAccount();
    const binding = operatorClusterRoleBinding();
    expect(() => new ClusterRole(role).validate()).not.toThrow();
    expect(() => new ServiceAccount(sa).validate()).not.toThrow();
    expect(() => new ClusterRoleBinding(binding).validate()).not.toThrow();
    expect(role.metadata.name).toBe(DEFAULT_OPERATOR_NAME);
    expect(sa.metadata).toMatchObject({ name: DEFAULT_OPERATOR_NAME, namespace: DEFAULT_OPERATOR_NAMESPACE });
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace },
    ]);
  });

  it('namespaced mode: the same rules as a Role in the watched namespace, every resource namespaced', () => {
    const role = operatorRole('team-a');
    const binding = operatorRoleBinding('team-a', { namespace: 'ops' });
    expect(() => new Role(role).validate()).not.toThrow();
    expect(() => new RoleBinding(binding).validate()).not.toThrow();
    expect(role.metadata.namespace).toBe('team-a');
    expect(role.rules).toEqual(operatorClusterRole().rules);
    expect(binding.metadata.namespace).toBe('team-a');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: role.metadata.name,
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: DEFAULT_OPERATOR_NAME, namespace: 'ops' },
    ]);
    // A Role cannot grant cluster-scoped resources; the rules must need none.
    const clusterScoped = [
      'namespaces',
      'nodes',
      'persistentvolumes',
      'customresourcedefinitions',
      'clusterroles',
    ];
    expect([...grants().keys()].filter((k) => clusterScoped.includes(k.split('/')[1] ?? ''))).toEqual([]);
  });

  it('takes namespace, names and labels as parameters', () => {
    const options = {
      namespace: 'ops',
      serviceAccountName: 'cfx-op',
      clusterRoleName: 'cfx-op-role',
      clusterRoleBindingName: 'cfx-op-binding',
      labels: { 'app.kubernetes.io/instance': 'prod' },
    };
    const role = operatorClusterRole(options);
    const sa = operatorServiceAccount(options);
    const binding = operatorClusterRoleBinding(options);
    expect(role.metadata.name).toBe('cfx-op-role');
    expect(role.metadata.labels).toMatchObject({ 'app.kubernetes.io/instance': 'prod' });
    expect(sa.metadata).toMatchObject({ name: 'cfx-op', namespace: 'ops' });
    expect(binding).toMatchObject({
      metadata: { name: 'cfx-op-binding' },
      roleRef: { kind: 'ClusterRole', name: 'cfx-op-role' },
      subjects: [{ kind: 'ServiceAccount', name: 'cfx-op', namespace: 'ops' }],
    });
    expect(() => new ClusterRoleBinding(binding).validate()).not.toThrow();
    // The binding name follows the role's unless given.
    expect(operatorClusterRoleBinding({ clusterRoleName: 'x' }).metadata.name).toBe('x');
  });

  it('kubernetes-models does reject a malformed object (the validation is real)', () => {
    const bad = { ...operatorClusterRoleBinding(), roleRef: { kind: 'ClusterRole' } };
    expect(() => new ClusterRoleBinding(bad as never).validate()).toThrow();
  });
});
