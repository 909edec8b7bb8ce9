/**
 * The one registration list of node services (design note section 3). Adding a service means
 * writing its folder (its pure core and its `NodeService` adapter) and adding it here: its place
 * in `serviceList` fixes the order the host calls it in (membership first: it announces views;
 * services that depend on another come after it).
 *
 * Everything that builds a node (the daemon, embedded mode, the simulator) calls
 * `createClusterNode`, and builds its transport with `nodePeerCodec()`, so every node speaks the
 * same channels.
 */
import { assert } from './lib/assert.js';
import type { NodeId } from './lib/ids.js';
import { GroupService, type GroupObserver } from './groups/group-service.js';
import { FenceService, type FenceObserver } from './fencing/fence-service.js';
import { MANUAL_ONLY_TOPOLOGY, type FenceTopology } from './fencing/fence-topology.js';
import { KvService } from './kv/kv-service.js';
import { DLM_CHANNEL, DlmService, type DlmServiceOptions } from './dlm/dlm-service.js';
import { RecoveryService } from './recovery/recovery-service.js';
import {
  MEMBERSHIP_CHANNEL,
  MembershipService,
  bootstrapConfState,
  type ClusterCanary,
  type ClusterTiming,
  type MembershipObserver,
} from './membership/membership-service.js';
import type { MemberNodeSpec } from './membership/index.js';
import type { VotequorumOptions } from './quorum/index.js';
import { ClusterNode, hostChannels, type HostObserver } from './runtime/cluster-node.js';
import type { NodeEnv } from './runtime/env.js';
import type { ChannelSpec, NodeService } from './runtime/node-service.js';
import { peerCodecOf, type ChannelMessage } from './runtime/peer-channels.js';
import type { Codec } from './transport/transport.js';
import { RECOVERY_MEMBER_TIMEOUT_MS } from './constants.js';

/** The services of a cohort node, by name. */
export interface CohortServices {
  readonly membership: MembershipService;
  readonly groups: GroupService;
  readonly fencing: FenceService;
  readonly recovery: RecoveryService;
  readonly kv: KvService;
  readonly dlm: DlmService;
}

/** A cohort node: the host and its services. */
export type CohortNode = ClusterNode<CohortServices>;

/** Everything worth observing on a node, one hook set per service. */
export type NodeObserver = HostObserver & MembershipObserver & GroupObserver & FenceObserver;

/** Fencing options of a node (`CohortNodeOptions.fencing`). */
export interface NodeFencingOptions {
  /** The cluster's fence topology (the config's `fencing` section). */
  readonly topology: FenceTopology;
  /**
   * How long after a removal the survivors treat the node as self-fenced (`watchdog` devices):
   * node lease + drift margin + one tick. Default: twice the follower lease plus one tick.
   */
  readonly watchdogWaitMs?: number;
}

/** Options of a cohort node. */
export interface CohortNodeOptions {
  readonly timing: ClusterTiming;
  /** Every configured node, strictly ascending by id; this node among them. */
  readonly nodes: readonly MemberNodeSpec[];
  readonly quorum: VotequorumOptions;
  /** Take a Raft snapshot after this many applied entries (default 10 000). */
  readonly snapshotEntries?: number;
  /** Entries kept behind a snapshot for slightly lagging followers (default 1 000). */
  readonly snapshotCatchUpEntries?: number;
  readonly observer?: NodeObserver;
  /** A planted bug, for the simulator only (see `ClusterCanary`). */
  readonly canary?: ClusterCanary;
  /** The fingerprint of the cluster-wide settings (see `MembershipServiceOptions`). */
  readonly settingsFingerprint?: string;
  /** Fencing (default: no devices, every fence waits for `cohort fence confirm`). */
  readonly fencing?: NodeFencingOptions;
  /**
   * How long the leader waits for a recovery round's member to report `stopped` or `started`
   * before evicting it from the group (default `RECOVERY_MEMBER_TIMEOUT_MS`; tests shorten it).
   */
  readonly recoveryMemberTimeoutMs?: number;
  /** DLM options (tests shorten the toss time). */
  readonly dlm?: DlmServiceOptions;
}

/** The services of one node, registered: by name, in call order, and their peer channels. */
export interface Registered {
  readonly services: CohortServices;
  /** The order the host calls them in. */
  readonly serviceList: readonly NodeService[];
  /** Every peer channel of the node: the host's, then each service's, in registration order. */
  readonly channels: readonly ChannelSpec<unknown>[];
}

/**
 * **The registration list.** Builds node `self`'s services; a new service is added here (and
 * nowhere else outside its folder).
 */
export function registerServices(self: NodeId, options: CohortNodeOptions): Registered {
  const observer = options.observer;
  const membership = new MembershipService(self, {
    timing: options.timing,
    nodes: options.nodes,
    quorum: options.quorum,
    ...(observer === undefined ? {} : { observer }),
    ...(options.canary === undefined ? {} : { canary: options.canary }),
    ...(options.settingsFingerprint === undefined ? {} : { settingsFingerprint: options.settingsFingerprint }),
  });
  const groups = new GroupService(membership, observer === undefined ? {} : { observer });
  const timing = options.timing;
  const fencing = new FenceService(membership, {
    topology: options.fencing?.topology ?? MANUAL_ONLY_TOPOLOGY,
    nodeNames: new Map(options.nodes.map((n) => [n.nodeId, n.name])),
    watchdogWaitMs: options.fencing?.watchdogWaitMs ?? 2 * timing.followerLeaseMs + timing.tickMs,
    selfFenceLeaseMs: timing.followerLeaseMs,
    leaseMs: (timing.electionTicks - timing.leaseMarginTicks) * timing.tickMs,
    selfFenceQuorumRule: !options.quorum.twoNode,
    ...(options.quorum.twoNode ? { twoNodeSuspectAfterMs: timing.detector.suspectAfterMs } : {}),
    ...(options.canary === 'two-node-unfenced' ? { twoNodeSkipFence: true } : {}),
    ...(observer === undefined ? {} : { observer }),
    ...(options.canary === 'fence-twice' ? { proposeFencedTwice: true } : {}),
  });
  const recovery = new RecoveryService(membership, {
    memberTimeoutMs: options.recoveryMemberTimeoutMs ?? RECOVERY_MEMBER_TIMEOUT_MS,
  });
  const kv = new KvService();
  const dlm = new DlmService(groups, membership, recovery, options.dlm ?? {});
  const serviceList: readonly NodeService[] = [membership, groups, fencing, recovery, kv, dlm];
  const declared = serviceList.flatMap((s) => s.channels ?? []).map((c) => c.id);
  assert(
    declared.join() === SERVICE_CHANNELS.map((c) => c.id).join(),
    'SERVICE_CHANNELS lists every registered service channel, in registration order',
  );
  return {
    services: { membership, groups, fencing, recovery, kv, dlm },
    serviceList,
    channels: [...hostChannels(), ...SERVICE_CHANNELS],
  };
}

/**
 * The services' peer channels, in registration order (a service with a channel adds it here too:
 * the peer codec is built before any node exists, and `registerServices` checks the two agree).
 */
const SERVICE_CHANNELS: readonly ChannelSpec<unknown>[] = [MEMBERSHIP_CHANNEL, DLM_CHANNEL];

/** A fresh peer codec for cohort nodes (each codec owns its msgpackr state). */
export function nodePeerCodec(): Codec<ChannelMessage> {
  return peerCodecOf([...hostChannels(), ...SERVICE_CHANNELS]);
}

/**
 * Builds a cohort node over `env` from the state on its disk (throws `RecoveryError` when the
 * disk cannot give a safe start). Nothing runs until `start`.
 */
export function createClusterNode(env: NodeEnv<ChannelMessage>, options: CohortNodeOptions): CohortNode {
  return hostNode(env, options, registerServices(env.nodeId, options));
}

/** The host over already registered services (`createClusterNode`; tests that add a service). */
export function hostNode<S>(
  env: NodeEnv<ChannelMessage>,
  options: CohortNodeOptions,
  registered: { readonly services: S; readonly serviceList: readonly NodeService[] },
): ClusterNode<S> {
  return new ClusterNode<S>(env, {
    timing: options.timing,
    bootstrap: bootstrapConfState(options.nodes, options.quorum),
    waitForAll: options.quorum.waitForAll,
    ...(options.snapshotEntries === undefined ? {} : { snapshotEntries: options.snapshotEntries }),
    ...(options.snapshotCatchUpEntries === undefined ? {} : { snapshotCatchUpEntries: options.snapshotCatchUpEntries }),
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    services: registered.services,
    serviceList: registered.serviceList,
  });
}

export { GroupError, type GroupErrorCode } from './groups/group-service.js';
export { MUX_TAG_KV } from './kv/kv-service.js';
export {
  CLUSTER_CANARIES,
  MUX_TAG_MEMBERSHIP,
  type ClusterCanary,
  type ClusterTiming,
} from './membership/membership-service.js';
export {
  FenceConfirmError,
  type ClusterStatus,
  type FenceConfirmErrorCode,
  type FenceConfirmation,
  type StatusMember,
} from './membership/membership-status.js';
export type { ChannelMessage } from './runtime/peer-channels.js';
