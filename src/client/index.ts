/**
 * The client side of the local API: the typed client (`connect`, `CohortClient`) and the
 * low-level connection to the node's daemon over its Unix socket (`connectLocal`).
 */
export {
  CONNECT_TIMEOUT_MS_DEFAULT,
  SOCKET_ENV,
  ClientConnection,
  ClientStream,
  connectLocal,
  type CallOptions,
  type ConnectOptions,
} from './client-connection.js';
export { CohortClientError, type ClientErrorCode, type ClientOwnErrorCode } from './client-error.js';
export {
  ApiCohortClient,
  abortedError,
  connect,
  type ApiChannel,
  type ApiStream,
  type CohortClient,
  type ConnectClientOptions,
  type EventStream,
  type EventsOptions,
  type FenceConfirmOptions,
  type KvCasCondition,
  type KvClient,
  type GroupHandle,
  type GroupJoinOptions,
  type GroupsClient,
} from './cohort-client.js';
export type {
  ClusterEvent,
  CohortNode,
  CohortStatus,
  EventViewMember,
  FenceConfirmResult,
  GroupChange,
  GroupItem,
  GroupMemberInfo,
  GroupSendResult,
  GroupViewInfo,
  KvCasResult,
  KvDeleteResult,
  KvGetResult,
  KvPutResult,
  LinkState,
  NodesResult,
  QuorumResult,
  StatusMember,
  WaitForAllPhase,
} from './client-results.js';
export type { ApiData } from '../api/index.js';
