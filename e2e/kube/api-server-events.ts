// Events are stored once, as core/v1 Events (as the real server stores them); events.k8s.io/v1
// is a view of the same objects with other field names. These convert between the two.

import type { KubeObject } from './api-server-store.js';

const RENAMES: Array<[core: string, events: string]> = [
  ['involvedObject', 'regarding'],
  ['message', 'note'],
  ['reportingComponent', 'reportingController'],
  ['source', 'deprecatedSource'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
];
const SHARED = [
  'metadata',
  'reportingInstance',
  'action',
  'reason',
  'type',
  'related',
  'eventTime',
  'series',
];

/** An events.k8s.io/v1 Event as the core/v1 Event it is stored as. */
export function eventsToCore(o: KubeObject): KubeObject {
  const out: KubeObject = { apiVersion: 'v1', kind: 'Event', metadata: o.metadata };
  for (const k of SHARED) if (o[k] !== undefined && k !== 'metadata') out[k] = o[k];
  for (const [core, events] of RENAMES) if (o[events] !== undefined) out[core] = o[events];
  return out;
}

/** A stored core/v1 Event as events.k8s.io/v1. */
export function coreToEvents(o: KubeObject): KubeObject {
  const out: KubeObject = { apiVersion: 'events.k8s.io/v1', kind: 'Event', metadata: o.metadata };
  for (const k of SHARED) if (o[k] !== undefined && k !== 'metadata') out[k] = o[k];
  for (const [core, events] of RENAMES) if (o[core] !== undefined) out[events] = o[core];
  return out;
}
