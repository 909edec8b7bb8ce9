/**
 * The client side of the local API: the typed client (`connect`, `CohortClient`) and the
 * low-level connection to the node's daemon over its Unix socket (`connectLocal`). The services'
 * client namespaces live in their folders (`src/kv`, `src/groups`, `src/membership`: `*-client.ts`)
 * and the caller contract and client error in `src/api`; this module re-exports them as one API.
 */
export {
  CONNECT_TIMEOUT_MS_DEFAULT,
  SOCKET_ENV,
  ClientConnection,
  ClientStream,
  connectLocal,
  type ConnectOptions,
} from './client-connection.js';
export type { ApiStream, CallOptions } from '../api/api-caller.js';
export { CohortClientError, abortedError, type ClientErrorCode, type ClientOwnErrorCode } from '../api/client-error.js';
export {
  ApiCohortClient,
  connect,
  type ApiChannel,
  type CohortClient,
  type ConnectClientOptions,
} from './cohort-client.js';
export type { CohortNode, CohortStatus, LinkState, NodesResult, StatusMember } from './client-results.js';
export type {
  KvCasCondition,
  KvCasResult,
  KvClient,
  KvDeleteResult,
  KvGetResult,
  KvPutResult,
} from '../kv/kv-client.js';
export type {
  GroupChange,
  GroupHandle,
  GroupInfo,
  GroupItem,
  GroupJoinOptions,
  GroupMemberInfo,
  GroupSendResult,
  GroupsClient,
  GroupViewInfo,
} from '../groups/group-client.js';
export type {
  ParticipateOptions,
  Participation,
  RecoveryCallbacks,
  RecoveryClient,
  RecoveryMemberInfo,
  RecoveryRef,
  RecoveryRoundInfo,
  RecoveryStartInfo,
  RecoveryWaitInfo,
} from '../recovery/recovery-client.js';
export type {
  ClusterEvent,
  EventStream,
  EventsOptions,
  EventViewMember,
  FenceConfirmOptions,
  FenceConfirmResult,
  QuorumResult,
  WaitForAllPhase,
} from '../membership/membership-client.js';
export type {
  FenceAttemptInfo,
  FenceHistory,
  FenceHistoryOptions,
  FenceRecordInfo,
  FencingClient,
} from '../fencing/fence-client.js';
export type { ApiData } from '../api/index.js';
