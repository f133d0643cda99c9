import { describe, expect, it } from 'vitest';
import type { InternalStatus } from '../../../node/api/admin-contract.js';
import type { OperationStatus } from '../../api/cluster.js';
import { findCondition } from '../conditions.js';
import { plan } from '../plan.js';
import type { CertView, Observation, OwnedView, SlotView, TlsView } from '../types.js';
import { doc, member, NOW, prevStatus, world } from './member-fixtures.js';
import { CA_PHASE_WAIT_MS, caRotationStep, certificatesDue, RENEW_BEFORE_MS } from './owned.js';

const DAY = 24 * 60 * 60 * 1000;
const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString();
const IDS = ['n-a', 'n-b', 'n-c'];

function cert(fingerprint: string, fromMs: number, toMs: number, problem: string | null = null): CertView {
  return { notBefore: at(fromMs), notAfter: at(toMs), fingerprint, problem };
}

/** Operator-managed TLS: a 10-year CA 1 year old, leaves issued 30 days ago for a year. */
function tls(over: Partial<TlsView> = {}): TlsView {
  return {
    managed: true,
    ca: cert('ca-1', -365 * DAY, 9 * 365 * DAY),
    caProblem: null,
    rotation: { phase: null, since: null, next: null },
    node: cert('node-1', -30 * DAY, 335 * DAY),
    admin: cert('admin-1', -30 * DAY, 335 * DAY),
    ...over,
  };
}

function owned(over: Partial<OwnedView> = {}): OwnedView {
  return { drift: [], pdbMinAvailable: 2, tls: tls(), unsupported: [], ...over };
}

/** What a member reports it has loaded. */
function loaded(slot: SlotView, certFp: string, cas: string[]): SlotView {
  const summary = (fp: string) => ({
    subject: 'x',
    issuer: 'x',
    serial: '01',
    fingerprint_sha256: fp,
    not_before: at(0),
    not_after: at(DAY),
  });
  const node = slot.node as InternalStatus;
  return {
    ...slot,
    node: {
      ...node,
      tls: {
        cert: summary(certFp),
        ca: cas.map(summary),
        loaded_at: at(0),
        reloads: 0,
        reload_failures: 0,
        last_error: null,
      },
    },
  };
}

/** A settled three-member cluster: every member answers, healthy, nothing to do. */
function settled(o: OwnedView | undefined, now = NOW, slots?: SlotView[]): Observation {
  const w = world({
    slots: slots ?? IDS.map((id, k) => member(k, id, { leader: IDS[0] })),
    doc: doc(Object.fromEntries(IDS.map((id) => [id, { reachable: true }])), IDS[0] ?? null),
    prev: prevStatus(Object.fromEntries(IDS.map((id, k) => [id, k]))),
  });
  return { ...w, now, ...(o ? { owned: o } : {}) };
}

describe('a settled cluster', () => {
  it('with nothing due takes no step', () => {
    expect(plan(settled(owned())).action).toEqual({ type: 'none' });
    expect(plan(settled(undefined)).action).toEqual({ type: 'none' });
  });

  it('renews the leaves when the clock reaches 29 days before they expire, without any spec change', () => {
    const expiry = 335 * DAY;
    expect(plan(settled(owned(), new Date(NOW.getTime() + expiry - 31 * DAY))).action.type).toBe('none');
    const p = plan(settled(owned(), new Date(NOW.getTime() + expiry - 29 * DAY)));
    expect(p.action.type).toBe('renew-certificates');
    if (p.action.type !== 'renew-certificates') return;
    expect(p.action.reasons).toEqual([
      expect.stringMatching(/^node certificate: expires at .* within 30 days$/),
      expect.stringMatching(/^admin certificate: expires at .* within 30 days$/),
    ]);
    expect(p.status.operation).toMatchObject({ kind: 'CertificateRenewal', step: 'renewing' });
    expect(findCondition(p.status.conditions, 'Progressing')).toMatchObject({
      status: 'True',
      reason: 'RenewingCertificates',
    });
    expect(p.events.map((e) => e.reason)).toContain('RenewingCertificates');
  });

  it('starts a CA rotation once less than a third of its life is left, without any spec change', () => {
    // 10-year CA, 1 year old: due 6 years and 8 months after its start. Fresh leaves throughout,
    // to see the CA step alone.
    const due = -365 * DAY + (10 * 365 * DAY * 2) / 3;
    const fresh = (t: number) =>
      owned({
        tls: tls({
          node: cert('node-1', t - DAY, t + 300 * DAY),
          admin: cert('admin-1', t - DAY, t + 300 * DAY),
        }),
      });
    expect(plan(settled(fresh(due - DAY), new Date(NOW.getTime() + due - DAY))).action.type).toBe('none');
    const p = plan(settled(fresh(due + DAY), new Date(NOW.getTime() + due + DAY)));
    expect(p.action).toMatchObject({ type: 'rotate-ca', step: 'start' });
    expect(p.status.operation).toMatchObject({ kind: 'CARotation', step: 'trust-new' });
    expect(p.events.map((e) => e.reason)).toEqual(['CARotationStarted']);
    // 29 days before the CA expires: rotated, not replaced (the members keep their trust).
    const late = 9 * 365 * DAY - 29 * DAY;
    expect(plan(settled(fresh(late), new Date(NOW.getTime() + late))).action).toMatchObject({
      type: 'rotate-ca',
      step: 'start',
    });
  });

  it('restores a deleted Service or budget with the next pass', () => {
    const p = plan(settled(owned({ drift: ['Service demo-headless: missing'] })));
    expect(p.action).toEqual({
      type: 'repair-owned',
      minAvailable: 2,
      repairs: ['Service demo-headless: missing'],
    });
    expect(p.status.operation).toMatchObject({ kind: 'Repair', step: 'applying' });
    expect(p.events).toEqual([
      { type: 'Warning', reason: 'RepairingOwnedObjects', message: 'Service demo-headless: missing' },
    ]);
    const gone = plan(
      settled(owned({ drift: ['PodDisruptionBudget demo: missing'], pdbMinAvailable: null })),
    );
    expect(gone.action).toMatchObject({ type: 'repair-owned', minAvailable: 2 });
  });

  it('refuses settings the platform cannot run', () => {
    const p = plan(settled(owned({ unsupported: ['pod-ip with TLS'] })));
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Stalled')).toMatchObject({
      status: 'True',
      reason: 'UnsupportedSettings',
      message: 'pod-ip with TLS',
    });
  });

  it('stalls on a CA Secret that exists but holds no usable CA, rather than splitting the members', () => {
    const p = plan(settled(owned({ tls: tls({ ca: null, caProblem: 'its key does not match' }) })));
    expect(p.action.type).toBe('wait');
    expect(findCondition(p.status.conditions, 'Stalled')?.reason).toBe('CAUnusable');
  });
});

describe('certificatesDue', () => {
  const now = NOW.getTime();
  it.each([
    ['nothing', tls(), []],
    [
      'a missing CA and leaves',
      tls({ ca: null, caProblem: 'missing', node: null, admin: null }),
      ['CA: missing', 'node certificate: missing', 'admin certificate: missing'],
    ],
    ['an expired CA', tls({ ca: cert('ca', -10 * DAY, -DAY) }), [`CA: expired at ${at(-DAY)}`]],
    [
      'a leaf defect',
      tls({ node: cert('n', -DAY, 300 * DAY, 'not signed by the current CA') }),
      ['node certificate: not signed by the current CA'],
    ],
    ['a leaf not valid yet', tls({ admin: cert('a', DAY, 300 * DAY) }), ['admin certificate: not valid yet']],
    [
      'an expired leaf',
      tls({ admin: cert('a', -300 * DAY, -DAY) }),
      [`admin certificate: expired at ${at(-DAY)}`],
    ],
  ])('%s', (_what, view, want) => {
    expect(certificatesDue(view, now)).toEqual(want);
  });

  it('30 days is the line', () => {
    const edge = tls({ node: cert('n', -DAY, RENEW_BEFORE_MS) });
    expect(certificatesDue(edge, now)).toEqual([]);
    expect(certificatesDue(edge, now + 1)).toHaveLength(1);
  });

  it('user-provided certificates are never re-issued', () => {
    const user = tls({ managed: false, node: cert('n', -300 * DAY, DAY) });
    expect(plan(settled(owned({ tls: user }))).action.type).toBe('none');
  });
});

describe('caRotationStep', () => {
  const now = NOW.getTime();
  const next = cert('ca-2', -DAY, 3650 * DAY);
  const report = (certFp: string, cas: string[]) => ({ cert: certFp, cas });
  const trusting = tls({ rotation: { phase: 'trust-new', since: at(-60_000), next } });
  const issuing = tls({
    ca: next,
    node: cert('node-2', -DAY, 300 * DAY),
    rotation: { phase: 'issue-new', since: at(-60_000), next: null },
  });

  it.each([
    [
      'trust-new, every member trusts the new CA',
      trusting,
      [report('node-1', ['ca-1', 'ca-2'])],
      0,
      'promote',
    ],
    ['trust-new, one has not loaded it', trusting, [report('node-1', ['ca-1'])], 0, 'wait'],
    ['trust-new, one silent past the wait', trusting, [null], CA_PHASE_WAIT_MS, 'promote'],
    [
      'trust-new without the new CA',
      tls({ rotation: { phase: 'trust-new', since: null, next: null } }),
      [],
      0,
      'start',
    ],
    [
      'issue-new, every member serves the new leaf',
      issuing,
      [report('node-2', ['ca-2', 'ca-1'])],
      0,
      'finish',
    ],
    ['issue-new, one still serves the old leaf', issuing, [report('node-1', ['ca-2', 'ca-1'])], 0, 'wait'],
    ['issue-new, past the wait', issuing, [report('node-1', [])], CA_PHASE_WAIT_MS, 'finish'],
  ] as const)('%s', (_what, view, reports, laterMs, want) => {
    const step = caRotationStep(view, [...reports], now + laterMs);
    expect(step && ('step' in step ? step.step : 'wait')).toBe(want);
  });

  it('a rotation waiting on the members is visible in status.operation and Progressing', () => {
    const slots = IDS.map((id, k) =>
      loaded(member(k, id, { leader: IDS[0] }), 'node-1', k === 2 ? ['ca-1'] : ['ca-1', 'ca-2']),
    );
    const p = plan(settled(owned({ tls: trusting }), NOW, slots));
    expect(p.action.type).toBe('wait');
    expect(p.status.operation).toMatchObject({ kind: 'CARotation', step: 'trust-new' });
    expect(findCondition(p.status.conditions, 'Progressing')?.message).toContain(
      '1 of 3 members have not loaded it yet',
    );
    const all = IDS.map((id, k) => loaded(member(k, id, { leader: IDS[0] }), 'node-1', ['ca-1', 'ca-2']));
    expect(plan(settled(owned({ tls: trusting }), NOW, all)).action).toMatchObject({
      type: 'rotate-ca',
      step: 'promote',
    });
  });
});

describe('the disruption budget follows the live voters', () => {
  const five = ['n-a', 'n-b', 'n-c', 'n-d', 'n-e'];
  function scaling(
    voters: string[],
    pods: number,
    o: Partial<OwnedView> = {},
    availability?: string,
  ): Observation {
    const w = world({
      slots: Array.from({ length: pods }, (_, k) => member(k, five[k] ?? `n-${k}`, { leader: 'n-a' })),
      doc: doc(Object.fromEntries(voters.map((id) => [id, { reachable: true }])), 'n-a'),
      prev: prevStatus(Object.fromEntries(voters.map((id, k) => [id, k]))),
      replicas: pods,
    });
    const cluster = availability ? { ...w.cluster, spec: { ...w.cluster.spec, availability } } : w.cluster;
    return { ...w, cluster: cluster as Observation['cluster'], owned: owned({ pdbMinAvailable: 3, ...o }) };
  }

  it.each([
    // voters, pods: minAvailable = pods - (voters - quorum)
    [5, 5, 3],
    [4, 5, 4], // a 5 -> 3 scale-down half-way: the removed member's pod still runs
    [3, 4, 3], // a scale-up's new learner counts as a pod, not a voter
    [3, 3, 2],
    [2, 2, 2], // no tolerance: no eviction
    [1, 1, 1],
  ])('%i voters in %i pods -> minAvailable %i', (voters, pods, want) => {
    const p = plan(scaling(five.slice(0, voters), pods));
    if (want === 3) expect(p.action.type).not.toBe('repair-owned');
    else expect(p.action).toMatchObject({ type: 'repair-owned', minAvailable: want });
  });

  it('AllowDowntime lets one member of a 1- or 2-member cluster be drained', () => {
    expect(plan(scaling(five.slice(0, 1), 1, {}, 'AllowDowntime')).action).toMatchObject({ minAvailable: 0 });
    expect(plan(scaling(five.slice(0, 2), 2, {}, 'AllowDowntime')).action).toMatchObject({ minAvailable: 1 });
    // With a tolerance already, AllowDowntime changes nothing.
    expect(plan(scaling(five.slice(0, 5), 5, {}, 'AllowDowntime')).action.type).not.toBe('repair-owned');
  });

  it('a budget change is a Normal event, not a repair warning', () => {
    const p = plan(scaling(five.slice(0, 3), 3));
    expect(p.events).toEqual([
      expect.objectContaining({ type: 'Normal', reason: 'DisruptionBudgetUpdated' }),
    ]);
  });
});

describe('a repair or a renewal is a side step: it never replaces an operation in flight', () => {
  const started = at(-60_000);
  const flows = [
    { kind: 'Replace', step: 'removing', ordinal: 1, replaces: 'n-gone', startedAt: started },
    { kind: 'ScaleUp', step: 'adding', ordinal: 3, operationId: 'op-7', startedAt: started },
    { kind: 'RollingUpdate', step: 'restarting', ordinal: 2, revision: 'r2', startedAt: started },
    { kind: 'Recovery', step: 'forcing', ordinal: 0, startedAt: started },
  ] as const;
  const due = { node: cert('node-1', -360 * DAY, 5 * DAY) }; // 5 days left: renew
  const sideSteps = [
    ['renew-certificates', 'CertificateRenewal', owned({ tls: tls(due) })],
    ['repair-owned', 'Repair', owned({ drift: ['Service demo-headless: missing'] })],
  ] as const;

  function withOperation(o: OwnedView, operation: OperationStatus | undefined): Observation {
    const obs = settled(o);
    const status = { ...obs.cluster.status, ...(operation ? { operation } : {}) };
    return { ...obs, cluster: { ...obs.cluster, status } };
  }

  for (const [action, kind, o] of sideSteps) {
    it.each(flows)(`${action} keeps a $kind in flight as status.operation`, (flow) => {
      const p = plan(withOperation(o, { ...flow }));
      expect(p.action.type).toBe(action);
      expect(p.status.operation).toEqual(flow);
    });

    it(`${action} names itself when nothing is in flight, or only another side step`, () => {
      expect(plan(withOperation(o, undefined)).status.operation).toMatchObject({ kind });
      const other = kind === 'Repair' ? 'CertificateRenewal' : 'Repair';
      const p = plan(withOperation(o, { kind: other, step: 'x', startedAt: started }));
      expect(p.status.operation).toMatchObject({ kind });
    });
  }
});
