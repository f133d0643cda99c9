import { describe, expect, it } from 'vitest';
import { CertError } from './errors.js';
import { statefulSetSans } from './sans.js';

describe('statefulSetSans', () => {
  it('names one pod through the headless Service, the client Service and loopback', () => {
    expect(
      statefulSetSans({ name: 'cfx', namespace: 'prod', headlessService: 'cfx-peers', ordinal: 2 }),
    ).toEqual({
      dnsNames: [
        'cfx-2',
        'cfx-2.cfx-peers',
        'cfx-2.cfx-peers.prod',
        'cfx-2.cfx-peers.prod.svc',
        'cfx-2.cfx-peers.prod.svc.cluster.local',
        'cfx',
        'cfx.prod',
        'cfx.prod.svc',
        'cfx.prod.svc.cluster.local',
        'localhost',
      ],
      ipAddresses: ['127.0.0.1'],
    });
  });

  it('names every pod for replicas, with the given cluster domain and client Services', () => {
    const { dnsNames } = statefulSetSans({
      name: 'cfx',
      namespace: 'ns',
      headlessService: 'cfx-hl',
      replicas: 3,
      clusterDomain: 'corp.example',
      clientServices: ['cfx-client', 'cfx-admin'],
    });
    for (const i of [0, 1, 2]) {
      expect(dnsNames).toContain(`cfx-${i}`);
      expect(dnsNames).toContain(`cfx-${i}.cfx-hl.ns.svc.corp.example`);
    }
    expect(dnsNames).not.toContain('cfx-3');
    expect(dnsNames).toContain('cfx-client.ns.svc.corp.example');
    expect(dnsNames).toContain('cfx-admin.ns');
    expect(dnsNames.some((n) => n.endsWith('cluster.local'))).toBe(false);
    expect(new Set(dnsNames).size).toBe(dnsNames.length);
  });

  it.each([
    [{ replicas: 3, ordinal: 0 }, /exactly one/],
    [{}, /exactly one/],
    [{ replicas: 0 }, /replicas/],
    [{ ordinal: -1 }, /ordinal/],
    [{ ordinal: 1.5 }, /ordinal/],
    [{ ordinal: 0, namespace: 'Bad_NS' }, /DNS name/],
  ])('refuses %j', (extra, message) => {
    const call = () => statefulSetSans({ name: 'cfx', namespace: 'ns', headlessService: 'hl', ...extra });
    expect(call).toThrow(CertError);
    expect(call).toThrow(message);
  });
});
