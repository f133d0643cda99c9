// The kubelet's pure state machines: crash-loop back-off, probe thresholds and schedules, phase.
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { CrashBackoff } from './backoff.js';
import { ContainerProbes, ProbeState, probeTiming } from './probe-state.js';
import { type ContainerView, type PodView, podPhase, podStatus } from './status.js';

describe('CrashBackoff', () => {
  it('restarts at once, then waits 10 s doubling to 5 min', () => {
    const b = new CrashBackoff();
    let t = 0;
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      t += 1000; // each run lasts a second
      const d = b.delayAfterExit(t);
      delays.push(d / 1000);
      t += d;
      b.restarted(t - d, t);
    }
    expect(delays).toEqual([0, 10, 20, 40, 80, 160, 300, 300, 300]);
  });

  it('starts over after running 10 minutes', () => {
    const b = new CrashBackoff();
    b.restarted(0, 0);
    expect(b.delayAfterExit(1000)).toBe(10_000);
    b.restarted(1000, 11_000);
    expect(b.delayAfterExit(11_000 + 10 * 60_000 + 1)).toBe(0);
  });
});

describe('probes', () => {
  it('honours initialDelay, period and thresholds', () => {
    const p = new ProbeState(
      'readiness',
      probeTiming({ initialDelaySeconds: 5, periodSeconds: 2, successThreshold: 2, failureThreshold: 3 }),
      1000,
    );
    expect(p.result).toBe(false);
    expect(p.nextRunAt()).toBe(6000);
    expect(p.observe(true, 6000)).toBe(false);
    expect(p.nextRunAt()).toBe(8000);
    expect(p.observe(true, 8000)).toBe(true);
    expect(p.result).toBe(true);
    p.observe(false, 10_000);
    p.observe(false, 12_000);
    expect(p.result).toBe(true);
    expect(p.observe(false, 14_000)).toBe(true);
    expect(p.result).toBe(false);
  });

  it('gates readiness and liveness on the startup probe, and kills on liveness failure', () => {
    const probes = new ContainerProbes(
      {
        startup: { periodSeconds: 1, failureThreshold: 30 },
        readiness: { periodSeconds: 1 },
        liveness: { periodSeconds: 1, failureThreshold: 2 },
      },
      0,
    );
    expect(probes.active().map((p) => p.kind)).toEqual(['startup']);
    expect(probes.verdict()).toEqual({ started: false, ready: false });
    probes.observe(probes.startup!, true, 3000);
    expect(probes.verdict()).toEqual({ started: true, ready: false });
    expect(probes.active().map((p) => p.kind)).toEqual(['readiness', 'liveness']);
    expect(probes.readiness!.nextRunAt()).toBe(3000);
    expect(probes.observe(probes.readiness!, true, 3000)).toEqual({ started: true, ready: true });
    expect(probes.observe(probes.liveness!, false, 4000).kill).toBeUndefined();
    expect(probes.observe(probes.liveness!, false, 5000).kill).toMatch(/liveness/);
  });

  it('kills a container whose startup probe keeps failing', () => {
    const probes = new ContainerProbes({ startup: { periodSeconds: 1, failureThreshold: 2 } }, 0);
    expect(probes.observe(probes.startup!, false, 0).kill).toBeUndefined();
    expect(probes.observe(probes.startup!, false, 1000).kill).toMatch(/startup/);
  });

  it('is ready at once without probes', () => {
    expect(new ContainerProbes({}, 0).verdict()).toEqual({ started: true, ready: true });
  });
});

describe('pod status', () => {
  const pod = (restartPolicy = 'Always'): V1Pod => ({
    metadata: { name: 'p' },
    spec: { restartPolicy, containers: [] },
  });
  const c = (state: ContainerView['state'], o: Partial<ContainerView> = {}): ContainerView => ({
    name: 'c',
    image: 'i',
    state,
    restartCount: 0,
    ready: false,
    started: false,
    ...o,
  });
  const view = (containers: ContainerView[], policy?: string): PodView => ({
    pod: pod(policy),
    hostIP: '10.245.0.1',
    podIP: '10.244.0.5',
    startTime: new Date(0),
    sandboxReady: true,
    initialized: true,
    init: [],
    containers,
  });
  const t = { exitCode: 0, reason: 'Completed', startedAt: new Date(0), finishedAt: new Date(1) };

  it('computes the phase as the kubelet does', () => {
    expect(podPhase(view([c({ kind: 'waiting', reason: 'ContainerCreating' })]))).toBe('Pending');
    expect(podPhase(view([c({ kind: 'running', startedAt: new Date() })]))).toBe('Running');
    const crashLooping = c(
      { kind: 'waiting', reason: 'CrashLoopBackOff' },
      { lastTerminated: { ...t, exitCode: 1 } },
    );
    expect(podPhase(view([crashLooping]))).toBe('Running');
    expect(podPhase(view([c({ kind: 'terminated', ...t })], 'Never'))).toBe('Succeeded');
    expect(podPhase(view([c({ kind: 'terminated', ...t, exitCode: 2 })], 'Never'))).toBe('Failed');
  });

  it('reports conditions, keeping transition times while unchanged', () => {
    const previous = new Map();
    const running = c({ kind: 'running', startedAt: new Date() }, { ready: true, started: true });
    const s1 = podStatus(view([running]), previous);
    const ready1 = s1.conditions!.find((x) => x.type === 'Ready')!;
    expect(ready1.status).toBe('True');
    expect(s1.podIPs).toEqual([{ ip: '10.244.0.5' }]);
    const s2 = podStatus(view([running]), previous);
    expect(s2.conditions!.find((x) => x.type === 'Ready')!.lastTransitionTime).toBe(
      ready1.lastTransitionTime,
    );
    const s3 = podStatus(view([{ ...running, ready: false }]), previous);
    const notReady = s3.conditions!.find((x) => x.type === 'ContainersReady')!;
    expect(notReady).toMatchObject({ status: 'False', reason: 'ContainersNotReady' });
    expect(notReady.message).toBe('containers with unready status: [c]');
  });
});
