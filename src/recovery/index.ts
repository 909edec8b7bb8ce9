/**
 * The recovery coordinator's core (docs/recovery.md): per service group a recovery round that
 * stops the group on an unclean removal of a member, waits for the fences and for lower levels,
 * and starts it again with the survivors. Held and driven by the membership state machine.
 */
export {
  RECOVERY_COMMAND_TYPES,
  RECOVERY_REPORTS,
  readRecoveryCommand,
  validateRecoveryCommand,
  writeRecoveryCommand,
  type RecoveryCommand,
  type RecoveryCommandType,
  type RecoveryReport,
} from './recovery-command.js';
export {
  RECOVERY_OPEN_REASONS,
  RECOVERY_STEPS,
  describeRecoveryEvent,
  readRecoveryEvent,
  writeRecoveryEvent,
  type RecoveryEventBody,
  type RecoveryEventPayload,
  type RecoveryMemberRef,
  type RecoveryOpenReason,
  type RecoveryStep,
} from './recovery-event.js';
export {
  RECOVERY_CANARIES,
  RECOVERY_PHASES,
  RecoveryTable,
  isOpenPhase,
  type RecoveryApply,
  type RecoveryCanary,
  type RecoveryEviction,
  type RecoveryFenceWait,
  type RecoveryOutcome,
  type RecoveryPhase,
  type RecoveryRound,
  type RecoveryRoundMember,
  type RecoveryWait,
} from './recovery-table.js';
