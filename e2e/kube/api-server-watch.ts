// Watch streams: newline-delimited JSON events on a chunked 200 response. Without a
// resourceVersion (or "0") the stream starts with an ADDED event per current object; from a
// resourceVersion it replays the history after it, or sends one ERROR event (410 Expired) and
// ends when the history no longer reaches back that far. Label and field selectors apply to
// both the old and the new state, so an object that stops matching is reported DELETED and one
// that starts matching ADDED. With allowWatchBookmarks, BOOKMARK events carry the latest
// resourceVersion on a timer (and mark the end of the initial events with sendInitialEvents).

import type { ServerResponse } from 'node:http';
import type { ApiCore } from './api-server-core.js';
import { expired } from './api-server-errors.js';
import type { ResourceRequest } from './api-server-handlers.js';
import { apiVersionOf } from './api-server-registry.js';
import { parseFieldSelector, parseLabelSelector } from './api-server-selectors.js';
import type { KubeObject, StoreEvent } from './api-server-store.js';

export interface WatchOptions {
  bookmarkIntervalMs: number;
  /** Objects as the client asked for them (a Table row, or the object itself). */
  render: (obj: KubeObject) => unknown;
  /** Called once the stream is set up (tests use it to know a watch is live). */
  onClose: (stop: () => void) => void;
}

export function serveWatch(core: ApiCore, r: ResourceRequest, res: ServerResponse, o: WatchOptions): void {
  const rt = r.rt;
  const matchLabels = parseLabelSelector(r.query.get('labelSelector') ?? undefined);
  const matchFields = parseFieldSelector(r.query.get('fieldSelector') ?? undefined);
  const namespace = rt.namespaced ? r.namespace : undefined;
  const matches = (obj: KubeObject | undefined) =>
    obj !== undefined &&
    (namespace === undefined || obj.metadata.namespace === namespace) &&
    matchLabels(obj.metadata.labels) &&
    matchFields(obj);
  const rvParam = r.query.get('resourceVersion') ?? '';
  const bookmarks = r.query.get('allowWatchBookmarks') === 'true';
  const initialEvents = r.query.get('sendInitialEvents');

  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-cache, private',
    'Transfer-Encoding': 'chunked',
    ...(r.warnings.length ? { Warning: r.warnings.map((w) => `299 - ${JSON.stringify(w)}`).join(', ') } : {}),
  });
  res.flushHeaders();
  let closed = false;
  const send = (type: string, object: unknown) => {
    if (!closed) res.write(`${JSON.stringify({ type, object })}\n`);
  };
  const bookmark = (annotations?: Record<string, string>) =>
    send('BOOKMARK', {
      kind: rt.kind,
      apiVersion: apiVersionOf(rt),
      metadata: {
        resourceVersion: String(core.store.resourceVersion),
        ...(annotations ? { annotations } : {}),
      },
    });
  // Events at or before this version were seen already (the initial state, or the client's).
  let floor = core.store.resourceVersion;
  const deliver = (e: StoreEvent) => {
    if (e.storage !== rt.storage || e.rv <= floor) return;
    const now = core.view(rt, e.object);
    const before = e.old ? core.view(rt, e.old) : undefined;
    const was = e.type !== 'ADDED' && matches(before);
    const is = e.type !== 'DELETED' && matches(now);
    if (e.type === 'DELETED') {
      if (matches(now) || was) send('DELETED', o.render(now));
    } else if (is && was) send('MODIFIED', o.render(now));
    else if (is) send('ADDED', o.render(now));
    else if (was) send('DELETED', o.render(now));
  };

  const fromScratch = rvParam === '' || rvParam === '0' || initialEvents === 'true';
  if (fromScratch) {
    for (const obj of core.store.list(rt.storage, namespace)) {
      const v = core.view(rt, obj);
      if (matches(v)) send('ADDED', o.render(v));
    }
    if (initialEvents === 'true' && bookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
  } else {
    const since = Number(rvParam);
    floor = Number.isFinite(since) ? since : 0;
    const history = core.store.eventsSince(rt.storage, floor);
    if (!Array.isArray(history)) {
      send('ERROR', expired(`too old resource version: ${rvParam} (${history.expired})`).toStatus());
      closed = true;
      res.end();
      return;
    }
    for (const e of history) deliver(e);
  }
  const unsubscribe = core.store.subscribe(deliver);
  const timer = bookmarks ? setInterval(() => bookmark(), o.bookmarkIntervalMs) : undefined;
  const timeoutSeconds = Number(r.query.get('timeoutSeconds') ?? 0);
  const timeout = timeoutSeconds > 0 ? setTimeout(() => stop(), timeoutSeconds * 1000) : undefined;
  const stop = () => {
    if (closed) return;
    closed = true;
    unsubscribe();
    clearInterval(timer);
    clearTimeout(timeout);
    res.end();
  };
  res.on('close', stop);
  o.onClose(stop);
}
