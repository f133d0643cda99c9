// The durable core of a node: storage opened and recovered, the key-value state machine, the peer
// transport listening, the Raft node started over them, and the address book of the members
// (docs/ARCHITECTURE.md §3, §4 and §5). Everything else of a node is built on top of this.

import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import type { NodeTls } from '../certs/node-tls.js';
import type { NodeConfig } from '../config.js';
import { KvStore } from '../kv/store.js';
import type { KvApplyResult } from '../kv/types.js';
import type { NodeMetrics } from '../metrics.js';
import { AddressBook } from '../ops/address-book.js';
import { staticClusterId } from '../ops/bootstrap.js';
import { DEFAULT_CONFIG, type RaftState } from '../raft/raft.js';
import { type RaftNode, realClock } from '../raft/raft-node.js';
import { openRaftNode } from '../raft/raft-node-open.js';
import { SeededRng } from '../raft/rng.js';
import type { NodeId, NodeInfo } from '../raft/types.js';
import { splitHostPort } from '../shapes/address.js';
import { type DiskStorage, nodeStorageHooks, openStorage, reportOpenFailure } from '../storage/index.js';
import { MembershipAdmission } from '../transport/membership-admission.js';
import { PeerTransport } from '../transport/peer-transport.js';

export interface NodeCore {
  id: NodeId;
  /** What this node advertises to peers and clients. */
  self: NodeInfo;
  storage: DiskStorage;
  kv: KvStore;
  transport: PeerTransport;
  raft: RaftNode<KvApplyResult>;
  addresses: AddressBook;
  /** Where the transport learns the cluster id before the log names one (the bootstrap service). */
  clusterIdFrom(source: () => string | null): void;
  /** Stops the Raft node, then the transport, then storage. */
  stop(): Promise<void>;
}

export interface CoreDeps {
  id: NodeId;
  log: Logger;
  metrics: NodeMetrics;
  /** This node's TLS material, kept current by the reloader; plain TCP without it. */
  tls?: NodeTls | undefined;
}

/** Opens storage, starts the transport and the Raft node; returns once the peer port listens. */
export async function startCore(config: NodeConfig, deps: CoreDeps): Promise<NodeCore> {
  const { id, log, metrics } = deps;
  const { storage, state } = await openNodeStorage(config, log, metrics);
  const kv = new KvStore({
    maxKeyBytes: config.maxKeyBytes,
    maxValueBytes: config.maxValueBytes,
    historyRevisions: config.watchHistory,
    logger: log.child({ component: 'kv' }),
  });
  // The transport delivers into the Raft node, asks the bootstrap service for the cluster id and
  // the address book for the members it was told of; all are created after it, and until then
  // it admits nobody (peers redial).
  let raftRef: RaftNode<KvApplyResult> | null = null;
  let addressesRef: AddressBook | null = null;
  let clusterIdSource: () => string | null = () => null;
  const admission = new MembershipAdmission(id, (peer) => addressesRef?.get(peer)?.raft);
  const transport = new PeerTransport({
    selfId: id,
    onMessage: (m) => raftRef?.step(m),
    admission,
    clusterId: () => clusterIdSource() ?? raftRef?.metrics().membership.cluster?.id ?? null,
    advertisedAddress: config.advertiseRaftAddr,
    ...(deps.tls ? { tls: deps.tls } : {}),
    logger: log.child({ component: 'transport' }),
    metrics: { protocolError: (reason) => metrics.peerProtocolErrors.inc({ reason }) },
  });
  const [raftHost, raftPort] = splitHostPort(config.raftAddr);
  await transport.listen(raftHost, raftPort);

  // A recovered snapshot is installed in slices before the node starts (openRaftNode); peers'
  // messages meanwhile are dropped (raftRef is null) and resent by them.
  const raft = await startRaft(config, { id, state, storage, kv, transport, metrics });
  raftRef = raft;
  const self: NodeInfo = {
    raft: config.advertiseRaftAddr,
    api: config.advertiseApiAddr,
    admin: config.advertiseAdminAddr,
  };
  const addresses = new AddressBook(id, self, (peers) => transport.setPeers(peers));
  addressesRef = addresses;
  followMembership(raft, admission, addresses);
  if (config.initialCluster) addresses.hint(config.initialCluster);
  initializeStaticCluster(config, raft, state, log);
  keepSnapshotting(raft, config.snapshotEntries, config.snapshotLogMib * 2 ** 20, metrics, log);
  raft.watchMetrics((m) => metrics.observeRaft(m));
  raft.onLeaderChange((leader, term) => log.info({ leader, term }, leader ? 'leader known' : 'no leader'));

  return {
    id,
    self,
    storage,
    kv,
    transport,
    raft,
    addresses,
    clusterIdFrom: (source) => {
      clusterIdSource = source;
    },
    stop: async () => {
      await raft.shutdown();
      await transport.close();
      await storage.close();
    },
  };
}

async function openNodeStorage(config: NodeConfig, log: Logger, metrics: NodeMetrics) {
  const storageLog = log.child({ component: 'storage' });
  return openStorage(config.dataDir, {
    logger: storageLog,
    onFsync: (ms) => metrics.fsync.observe(ms / 1000),
    // Fail-stop: a failed write or fsync exits the process before anything is acknowledged.
    ...nodeStorageHooks(process.env, storageLog),
  }).catch((err: unknown) => reportOpenFailure(err, storageLog));
}

function startRaft(
  config: NodeConfig,
  parts: {
    id: NodeId;
    state: RaftState;
    storage: DiskStorage;
    kv: KvStore;
    transport: PeerTransport;
    metrics: NodeMetrics;
  },
): Promise<RaftNode<KvApplyResult>> {
  return openRaftNode({
    config: {
      ...DEFAULT_CONFIG,
      id: parts.id,
      rng: new SeededRng(randomInt(2 ** 31)),
      electionTicks: config.electionTicks,
      // Entries of 128-put transactions are ~18 KiB: a Ready of 1,024 of them is half a second of
      // applying in one piece (a restart's replay, a follower catching up); 64 is ~20 ms.
      maxApplyBatch: APPLY_BATCH_ENTRIES,
    },
    state: parts.state,
    storage: parts.storage,
    stateMachine: parts.kv,
    transport: parts.transport,
    clock: realClock,
    tickMs: config.tickMs,
    onApplied: (_entries, ms) => parts.metrics.apply.observe(ms / 1000),
  });
}

/** The transport's admission and the address book follow every committed membership. */
function followMembership(
  raft: RaftNode<KvApplyResult>,
  admission: MembershipAdmission,
  addresses: AddressBook,
): void {
  // Admission first: the transport forgets the addresses of retired ids when its peers change.
  let known = raft.metrics().membership;
  admission.update(known);
  addresses.learn(known);
  raft.watchMetrics((m) => {
    if (m.membership === known) return;
    known = m.membership;
    admission.update(m.membership);
    addresses.learn(m.membership);
  });
}

/** On a fresh node of a static `--initial-cluster`, writes the first membership. */
function initializeStaticCluster(
  config: NodeConfig,
  raft: RaftNode<KvApplyResult>,
  state: RaftState,
  log: Logger,
): void {
  const fresh = state.hardState.term === 0 && state.entries.length === 0 && state.snapshot === null;
  if (!fresh || !config.initialCluster) return;
  // Every member of a static initial cluster writes the same first entry, so they agree on it.
  raft
    .initialize(Object.keys(config.initialCluster), {
      nodes: config.initialCluster,
      cluster: { id: staticClusterId(config.initialCluster), restoredFrom: null },
    })
    .catch((err: unknown) => log.error({ err }, 'initialize failed'));
}

/** Committed entries applied per Ready (RaftConfig.maxApplyBatch) by a node process. */
const APPLY_BATCH_ENTRIES = 64;

/** Applied entries between two sums of the log's bytes (RaftNode.logBytes walks the log). */
const LOG_BYTES_CHECK_ENTRIES = 256;

/**
 * Snapshot every `everyEntries` applied entries or `logBytes` of log (--snapshot-log-mib),
 * whichever comes first, so the log stays short and restarts fast: 1M keys loaded as 128-put
 * transactions are ~7,800 entries and 128 MiB, which a restart would otherwise re-apply in full
 * and memory would hold (docs/performance.md, "Snapshots, transfers and stalls at 1M keys").
 */
function keepSnapshotting(
  raft: RaftNode<KvApplyResult>,
  everyEntries: number,
  logBytes: number,
  metrics: NodeMetrics,
  log: Logger,
): void {
  let busy = false;
  let bytesCheckedAt = 0;
  const due = (applied: number, since: number): boolean => {
    if (since >= everyEntries) return true;
    if (since === 0 || applied - bytesCheckedAt < LOG_BYTES_CHECK_ENTRIES) return false;
    bytesCheckedAt = applied;
    return raft.logBytes() >= logBytes;
  };
  raft.watchMetrics((m) => {
    if (busy || !due(m.lastApplied, m.lastApplied - (m.snapshot?.index ?? 0))) return;
    busy = true;
    const end = metrics.snapshotSeconds.startTimer();
    raft
      .triggerSnapshot()
      .then((meta) => {
        end();
        if (meta) metrics.snapshots.inc();
      })
      .catch((err: unknown) => log.warn({ err }, 'snapshot failed'))
      .finally(() => {
        busy = false;
      });
  });
}
