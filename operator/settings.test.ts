import { describe, expect, it } from 'vitest';
import { loadOperatorConfig, OperatorSettingsError } from './settings.js';

describe('the operator settings', () => {
  it('defaults every setting; the Lease lives in the operator namespace', () => {
    expect(loadOperatorConfig([], { POD_NAMESPACE: 'ops', POD_NAME: 'op-1' }, 'host')).toEqual({
      metricsAddr: '0.0.0.0:8080',
      leaderElect: true,
      leaseNamespace: 'ops',
      leaseName: 'conflux-operator',
      logLevel: 'info',
      memberAddress: 'dns',
      networkPolicy: false,
      identity: 'op-1',
      podNamespace: 'ops',
    });
    expect(loadOperatorConfig([], {}, 'host')).toMatchObject({
      identity: 'host',
      leaseNamespace: 'conflux-system',
    });
  });

  it('takes flags over variables, and an empty variable as unset', () => {
    const env = {
      CONFLUX_OPERATOR_NAMESPACE: 'team-a',
      CONFLUX_OPERATOR_LEADER_ELECT: 'false',
      CONFLUX_OPERATOR_LOG_LEVEL: '',
      CONFLUX_OPERATOR_NETWORK_POLICY: 'true',
    };
    const c = loadOperatorConfig(['--namespace', 'team-b', '--member-address=pod-ip'], env, 'h');
    expect(c).toMatchObject({
      namespace: 'team-b',
      leaderElect: false,
      logLevel: 'info',
      memberAddress: 'pod-ip',
      networkPolicy: true,
    });
  });

  it('refuses a bad value naming the flag and the variable', () => {
    const bad =
      (argv: string[], env: Record<string, string> = {}) =>
      () =>
        loadOperatorConfig(argv, env, 'h');
    expect(bad(['--member-address', 'ip'])).toThrow(
      /--member-address \(CONFLUX_OPERATOR_MEMBER_ADDRESS\): Invalid option/,
    );
    expect(bad([], { CONFLUX_OPERATOR_LEADER_ELECT: 'yes' })).toThrow(
      /--leader-elect \(CONFLUX_OPERATOR_LEADER_ELECT\)/,
    );
    expect(bad(['--metrics-addr', '8080'])).toThrow(/--metrics-addr .*expected host:port/);
    expect(bad(['--namespace', 'Team_A'])).toThrow(/--namespace .*a namespace name/);
    expect(bad(['--log-level', 'loud'])).toThrow(OperatorSettingsError);
    expect(bad(['--no-such-flag'])).toThrow(/Unknown option '--no-such-flag'/);
  });
});
