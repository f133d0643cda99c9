// Pod status and readiness probes of the pod runner's kubelet (pod-runner-kubelet.ts).

import type { ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import type {
  V1Container,
  V1ContainerState,
  V1Pod,
  V1PodCondition,
  V1PodStatus,
  V1Probe,
} from '@kubernetes/client-node';

export type Waiting = { reason: string; message?: string };
export type Terminated = {
  exitCode: number;
  signal?: number;
  reason: string;
  startedAt: Date;
  finishedAt: Date;
};

/** What a pod's status is made from: its worker's state. */
export interface PodState {
  pod: V1Pod;
  ip: string;
  child: ChildProcess | null;
  startedAt: Date | null;
  podStartTime: Date;
  restartCount: number;
  ready: boolean;
  waiting: Waiting | null;
  lastTerminated: Terminated | null;
  finalPhase: 'Succeeded' | 'Failed' | null;
}

/** The pod's status; `lastConditions` keeps each condition's lastTransitionTime while unchanged. */
export function podStatus(s: PodState, lastConditions: Map<string, V1PodCondition>): V1PodStatus {
  const running = s.child !== null && s.finalPhase === null;
  const phase = s.finalPhase ?? (running || s.restartCount > 0 ? 'Running' : 'Pending');
  const condition = (type: string, ok: boolean): V1PodCondition => {
    const status = ok ? 'True' : 'False';
    const previous = lastConditions.get(type);
    const c: V1PodCondition =
      previous?.status === status ? previous : { type, status, lastTransitionTime: new Date() };
    lastConditions.set(type, c);
    return c;
  };
  const container = s.pod.spec?.containers?.[0];
  let state: V1ContainerState;
  if (running && s.startedAt) state = { running: { startedAt: s.startedAt } };
  else if (s.finalPhase && s.lastTerminated) state = { terminated: s.lastTerminated };
  else state = { waiting: s.waiting ?? { reason: 'ContainerCreating' } };
  return {
    phase,
    hostIP: '127.0.0.1',
    hostIPs: [{ ip: '127.0.0.1' }],
    podIP: s.ip,
    podIPs: [{ ip: s.ip }],
    startTime: s.podStartTime,
    qosClass: 'BestEffort',
    conditions: [
      condition('PodScheduled', true),
      condition('Initialized', true),
      condition('ContainersReady', running && s.ready),
      condition('Ready', running && s.ready),
    ],
    containerStatuses: container
      ? [
          {
            name: container.name,
            image: container.image ?? '',
            imageID: '',
            ...(s.child?.pid ? { containerID: `pod-runner://${s.child.pid}` } : {}),
            ready: running && s.ready,
            started: running,
            restartCount: s.restartCount,
            state,
            ...(s.lastTerminated && !s.finalPhase ? { lastState: { terminated: s.lastTerminated } } : {}),
          },
        ]
      : [],
  };
}

/** One probe run: true if it passed. HTTPS probes do not verify the certificate (as the kubelet). */
export function runProbe(probe: V1Probe, ip: string, container: V1Container | undefined): Promise<boolean> {
  const timeoutMs = Math.min((probe.timeoutSeconds ?? 1) * 1000, 1000);
  const portOf = (port: number | string | undefined): number | undefined => {
    if (typeof port === 'number') return port;
    if (port === undefined) return undefined;
    if (/^\d+$/.test(port)) return Number(port);
    return container?.ports?.find((p) => p.name === port)?.containerPort;
  };
  if (probe.httpGet) {
    const get = probe.httpGet;
    const port = portOf(get.port as number | string);
    if (!port) return Promise.resolve(false);
    const https = get.scheme?.toUpperCase() === 'HTTPS';
    return new Promise((resolve) => {
      const headers = Object.fromEntries((get.httpHeaders ?? []).map((h) => [h.name, h.value]));
      const req = (https ? httpsRequest : httpRequest)(
        {
          host: get.host ?? ip,
          port,
          path: get.path ?? '/',
          method: 'GET',
          headers,
          timeout: timeoutMs,
          agent: false,
          ...(https ? { rejectUnauthorized: false } : {}),
        },
        (res) => {
          res.resume();
          const code = res.statusCode ?? 0;
          resolve(code >= 200 && code < 400);
        },
      );
      req.on('timeout', () => req.destroy(new Error('probe timed out')));
      req.on('error', () => resolve(false));
      req.end();
    });
  }
  if (probe.tcpSocket) {
    const port = portOf(probe.tcpSocket.port as number | string);
    if (!port) return Promise.resolve(false);
    return new Promise((resolve) => {
      const socket = connect({ host: probe.tcpSocket?.host ?? ip, port, timeout: timeoutMs });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(false));
    });
  }
  // exec and gRPC probes are not run: they count as passing.
  return Promise.resolve(true);
}
