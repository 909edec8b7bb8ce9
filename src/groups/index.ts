/**
 * Service groups (docs/groups.md): named sets of cluster members with totally ordered messages
 * and barriers, kept by the membership state machine on the cluster log.
 */
export {
  GROUP_COMMAND_TYPES,
  nameProblem,
  readGroupCommand,
  readName,
  validateGroupCommand,
  writeGroupCommand,
  writeName,
  type GroupCommand,
  type GroupCommandType,
} from './group-command.js';
export {
  BARRIER_OUTCOMES,
  GROUP_CANARIES,
  GROUP_CHANGE_KINDS,
  GroupTable,
  type BarrierOutcome,
  type BarrierPayload,
  type GroupApply,
  type GroupCanary,
  type GroupChangeKind,
  type GroupEventBody,
  type GroupMember,
  type GroupOutcome,
  type GroupView,
  type GroupViewPayload,
  type RetainedMessage,
} from './group-table.js';
export { GroupService, GroupError, type GroupErrorCode, type GroupObserver } from './group-service.js';
