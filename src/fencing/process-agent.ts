/**
 * The `process` agent: fences a node that is a local process (demos and tests: every node on one
 * host) by killing the pid in the node's pid file. Pure: it builds the run of `/bin/sh` with a
 * fixed script (`PROCESS_AGENT_SCRIPT`); the pid-file path and the action are the script's
 * positional arguments, never interpolated into it, so no configured path can inject shell code.
 *
 * The script, `sh -c SCRIPT fence_process ACTION PIDFILE STEPS`:
 * - `off`, `reboot`: reads the first line of PIDFILE, requires a positive decimal pid (at most 10
 *   digits; not 1, not the script itself nor its parent: the node running the fence), sends
 *   SIGKILL and polls every 0.1 s, at most STEPS times, until the process is gone. Exit 0 when it
 *   is gone, including when it was gone already ("no such process": a crashed node is fenced); a
 *   zombie counts as gone (it runs no code and holds no files). Exit 1 with a message on stderr
 *   when the pid file is missing, unreadable or garbage, the process belongs to another user, or
 *   it survived the wait. `reboot` is a kill too: the supervisor or operator restarts the node.
 * - `status`: exit 0 ("Status: ON") while the process runs, 2 ("Status: OFF") when it is gone.
 * - `on`: nothing to do, exit 0 (the supervisor or operator restarts the process).
 * - `monitor`, `list`, `metadata`: exit 0 with no output.
 * The exits follow the ClusterLabs convention, so `exitOutcome` (fence-agent.ts) maps them.
 *
 * Limits: a pid is only a number. If the node died and its pid was reused by another process of
 * the same user before the fence, that process is killed. Without `/proc` a process of another
 * user looks gone. Use real fence devices in production.
 */
import type { ProcessSpec } from '../runtime/process-runner.js';
import type { FenceAction, ProcessDevice } from './fence-topology.js';
import type { AgentTarget } from './fence-agent.js';

/** The shell the script runs in. */
export const PROCESS_AGENT_SHELL = '/bin/sh';

/** `$0` of the script (names it in `ps` and in the shell's own messages). */
export const PROCESS_AGENT_NAME = 'fence_process';

/** The fixed script; see the file comment. `$1` action, `$2` pid file, `$3` poll steps of 0.1 s. */
export const PROCESS_AGENT_SCRIPT = `
action=$1 file=$2 steps=$3
fail() { printf '%s\\n' "$*" >&2; exit 1; }
case $action in
  on) echo "Success: nothing to do (the supervisor restarts the process)"; exit 0 ;;
  monitor|list|metadata) exit 0 ;;
  off|reboot|status) ;;
  *) fail "unknown action: $action" ;;
esac
[ -n "$file" ] || fail "no pid file is configured for this node"
[ -r "$file" ] || fail "cannot read pid file $file"
pid= rest=
read -r pid rest < "$file" || [ -n "$pid" ] || fail "pid file $file is empty"
case $pid in
  ''|*[!0-9]*|0*) fail "pid file $file holds no process id: $(printf '%.40s' "$pid $rest")" ;;
esac
[ -z "$rest" ] || fail "pid file $file holds more than a process id: $(printf '%.40s' "$pid $rest")"
[ \${#pid} -le 10 ] || fail "pid file $file holds no process id: $(printf '%.40s' "$pid")"
[ "$pid" -gt 1 ] || fail "pid file $file names process 1: refused"
[ "$pid" != "$$" ] && [ "$pid" != "$PPID" ] || fail "pid file $file names the fencing node itself: refused"
state() {
  if kill -0 "$pid" 2>/dev/null; then
    if [ -r "/proc/$pid/status" ]; then
      while IFS= read -r line; do
        case $line in
          State:*Z*|State:*X*) echo gone; return ;;
          State:*) break ;;
        esac
      done < "/proc/$pid/status"
    fi
    echo alive
  elif [ -d "/proc/$pid" ]; then
    echo foreign
  else
    echo gone
  fi
}
s=$(state)
if [ "$action" = status ]; then
  case $s in
    alive) echo "Status: ON"; exit 0 ;;
    gone) echo "Status: OFF"; exit 2 ;;
    *) fail "process $pid exists but may not be signalled" ;;
  esac
fi
case $s in
  gone) echo "Success: process $pid is already gone"; exit 0 ;;
  foreign) fail "process $pid exists but may not be signalled" ;;
esac
kill -KILL "$pid" 2>/dev/null
i=0
while :; do
  [ "$(state)" = gone ] && { echo "Success: killed process $pid"; exit 0; }
  [ "$i" -lt "$steps" ] || break
  sleep 0.1 2>/dev/null || sleep 1
  i=$((i + 1))
done
fail "process $pid still runs after SIGKILL"
`;

/** Poll steps (0.1 s each) for a run bounded by `timeoutMs`: the script gives up at about 80% of it, before the runner stops it. */
export function processAgentSteps(timeoutMs: number): number {
  return Math.max(1, Math.floor((timeoutMs * 0.8) / 100));
}

/**
 * The run of the script for `action` on `target` (null for the device-level actions). A node
 * with no pid file in `device.pidFiles` gets an empty path: the script fails with
 * "no pid file is configured for this node" (a failed attempt, not a crash).
 */
export function processAgentSpec(device: ProcessDevice, action: FenceAction, target: AgentTarget | null): ProcessSpec {
  const pidFile = target === null ? '' : (device.pidFiles.get(target.name) ?? '');
  return {
    program: PROCESS_AGENT_SHELL,
    args: [
      '-c',
      PROCESS_AGENT_SCRIPT,
      PROCESS_AGENT_NAME,
      action,
      pidFile,
      String(processAgentSteps(device.timeoutMs)),
    ],
    timeoutMs: device.timeoutMs,
  };
}
