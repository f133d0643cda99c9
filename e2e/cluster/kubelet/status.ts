// Pod status from the kubelet's view of its containers (pure): phase as the kubelet's getPhase
// computes it, the conditions it owns (PodReadyToStartContainers, Initialized, ContainersReady,
// Ready; PodScheduled is the scheduler's and left alone), and containerStatuses.

import type {
  V1ContainerState,
  V1ContainerStatus,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
} from '@kubernetes/client-node';

export interface Terminated {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt: Date;
  finishedAt: Date;
  containerID?: string;
}

export type ContainerPhase =
  | { kind: 'waiting'; reason: string; message?: string }
  | { kind: 'running'; startedAt: Date }
  | ({ kind: 'terminated' } & Terminated);

export interface ContainerView {
  name: string;
  image: string;
  state: ContainerPhase;
  lastTerminated?: Terminated;
  restartCount: number;
  ready: boolean;
  started: boolean;
  containerID?: string;
}

export interface PodView {
  pod: V1Pod;
  podIP?: string;
  hostIP: string;
  startTime: Date;
  sandboxReady: boolean;
  /** All init containers completed. */
  initialized: boolean;
  init: ContainerView[];
  containers: ContainerView[];
  /** Set when the pod will not run again (Succeeded/Failed by restartPolicy, or evicted). */
  finalPhase?: 'Succeeded' | 'Failed';
  reason?: string;
  message?: string;
}

/** The kubelet's getPhase. */
export function podPhase(v: PodView): string {
  if (v.finalPhase) return v.finalPhase;
  const policy = v.pod.spec?.restartPolicy ?? 'Always';
  if (!v.initialized) {
    const failedInit = v.init.some((c) => c.state.kind === 'terminated' && c.state.exitCode !== 0);
    return failedInit && policy === 'Never' ? 'Failed' : 'Pending';
  }
  let pending = 0;
  let running = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const c of v.containers) {
    if (c.state.kind === 'running') running++;
    else if (c.state.kind === 'terminated') {
      stopped++;
      if (c.state.exitCode === 0) succeeded++;
    } else if (c.lastTerminated) stopped++;
    else pending++;
  }
  if (pending > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    if (policy === 'Never') return 'Failed';
    return 'Running';
  }
  return 'Pending';
}

function containerState(s: ContainerPhase): V1ContainerState {
  if (s.kind === 'running') return { running: { startedAt: s.startedAt } };
  if (s.kind === 'waiting') {
    return { waiting: { reason: s.reason, ...(s.message ? { message: s.message } : {}) } };
  }
  return { terminated: terminatedState(s) };
}

function terminatedState(t: Terminated): NonNullable<V1ContainerState['terminated']> {
  return {
    exitCode: t.exitCode,
    ...(t.signal ? { signal: t.signal } : {}),
    reason: t.reason,
    ...(t.message ? { message: t.message } : {}),
    startedAt: t.startedAt,
    finishedAt: t.finishedAt,
    ...(t.containerID ? { containerID: t.containerID } : {}),
  };
}

function containerStatus(c: ContainerView): V1ContainerStatus {
  return {
    name: c.name,
    image: c.image,
    imageID: `conflux.io/image@${c.image}`,
    ...(c.containerID ? { containerID: c.containerID } : {}),
    ready: c.ready,
    started: c.started,
    restartCount: c.restartCount,
    state: containerState(c.state),
    lastState: c.lastTerminated ? { terminated: terminatedState(c.lastTerminated) } : {},
  };
}

/**
 * The status to write. `previous` (the conditions last written, by type) keeps each condition's
 * lastTransitionTime while its status is unchanged.
 */
export function podStatus(v: PodView, previous: Map<string, V1PodCondition>): V1PodStatus {
  const now = new Date();
  const condition = (type: string, ok: boolean, reason?: string, message?: string): V1PodCondition => {
    const status = ok ? 'True' : 'False';
    const before = previous.get(type);
    const c: V1PodCondition = {
      type,
      status,
      lastTransitionTime: before?.status === status ? before.lastTransitionTime! : now,
      ...(!ok && reason ? { reason } : {}),
      ...(!ok && message ? { message } : {}),
    };
    previous.set(type, c);
    return c;
  };
  const phase = podPhase(v);
  const terminal = phase === 'Succeeded' || phase === 'Failed';
  const unready = v.containers.filter((c) => !c.ready).map((c) => c.name);
  const uninit = v.init.filter((c) => !(c.state.kind === 'terminated' && c.state.exitCode === 0));
  const containersReady = !terminal && unready.length === 0 && v.containers.length > 0;
  const gates = (v.pod.spec?.readinessGates ?? []).map((g) => g.conditionType);
  const current = v.pod.status?.conditions ?? [];
  const gatesOk = gates.every((g) => current.some((c) => c.type === g && c.status === 'True'));
  const notReadyMessage = unready.length
    ? `containers with unready status: [${unready.join(' ')}]`
    : undefined;
  const conditions = [
    condition('PodReadyToStartContainers', v.sandboxReady && !terminal),
    condition(
      'Initialized',
      v.initialized,
      'ContainersNotInitialized',
      `containers with incomplete status: [${uninit.map((c) => c.name).join(' ')}]`,
    ),
    condition(
      'ContainersReady',
      containersReady,
      terminal ? 'PodCompleted' : 'ContainersNotReady',
      terminal ? undefined : notReadyMessage,
    ),
    condition(
      'Ready',
      containersReady && gatesOk,
      terminal ? 'PodCompleted' : gatesOk ? 'ContainersNotReady' : 'ReadinessGatesNotReady',
      terminal ? undefined : (notReadyMessage ?? 'the status of pod readiness gates is not "True"'),
    ),
  ];
  const ip = v.podIP;
  return {
    phase,
    ...(v.reason ? { reason: v.reason } : {}),
    ...(v.message ? { message: v.message } : {}),
    conditions,
    hostIP: v.hostIP,
    hostIPs: [{ ip: v.hostIP }],
    ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
    startTime: v.startTime,
    ...(v.init.length ? { initContainerStatuses: v.init.map(containerStatus) } : {}),
    containerStatuses: v.containers.map(containerStatus),
  };
}
