/**
 * `KvService`: the replicated key-value store as a node service (docs/client.md, "KV"). Its
 * machine (`KvStateMachine`, in `src/log`: the Raft workload of the simulator drives it too) sits
 * on the cluster log under mux tag `MUX_TAG_KV`; writes are proposed at the leader through the
 * host's request router; reads are linearizable (`ServiceContext.read`, held after a stall).
 */
import type { ApiHandlerRegistry } from '../api/index.js';
import { defined } from '../lib/assert.js';
import { registerKvApi } from './kv-handlers.js';
import { err, ok, type Result } from '../lib/errors.js';
import {
  KvStateMachine,
  kvKeyProblem,
  validateKvCommand,
  type AnyStateMachine,
  type KvCommand,
  type KvCompare,
  type KvOutput,
} from '../log/index.js';
import type { MachineHandle, MachineSpec, NodeService, ServiceContext } from '../runtime/node-service.js';
import { RaftNodeError } from '../runtime/raft-node.js';

/** Mux tag of the KV store (never reuse a retired tag). */
export const MUX_TAG_KV = 2;

/** The KV machine's spec. */
export const KV_MACHINE: MachineSpec<KvCommand, KvOutput, KvStateMachine> = {
  tag: MUX_TAG_KV,
  name: 'kv',
  create: () => new KvStateMachine(),
  is: (m: AnyStateMachine): m is KvStateMachine => m instanceof KvStateMachine,
};

/** See the file comment. */
export class KvService implements NodeService {
  readonly name = 'kv';
  readonly machines = [KV_MACHINE];
  private ctxRef: ServiceContext | null = null;
  private handleRef: MachineHandle<KvCommand, KvOutput, KvStateMachine> | null = null;

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
    this.handleRef = ctx.machine(KV_MACHINE);
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the KV service is attached');
  }

  private get handle(): MachineHandle<KvCommand, KvOutput, KvStateMachine> {
    return defined(this.handleRef, 'the KV service is attached');
  }

  /** Registers the KV methods of the local API (`kv-handlers.ts`). */
  registerApi(registry: ApiHandlerRegistry): void {
    registerKvApi(registry, this);
  }

  /** A linearizable read of `key`: waits until the local store reflects every earlier write. */
  get(key: string, done: (r: Result<Extract<KvOutput, { type: 'get' }>, RaftNodeError>) => void): void {
    const invalid = validateKvCommand({ type: 'get', key });
    if (invalid !== null) {
      done(err(new RaftNodeError('REFUSED', `${invalid.code}: ${invalid.message}`, null, invalid.code)));
      return;
    }
    const deadlineMs = this.ctx.clock.nowMs() + this.ctx.requestTimeoutMs;
    this.ctx.read(deadlineMs, (r) => {
      done(r.ok ? ok(this.handle.machine().get(key)) : r);
    });
  }

  /** Puts `value` at `key`. */
  put(key: string, value: Uint8Array, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    this.command({ type: 'put', key, value }, done);
  }

  /** Puts `value` at `key` if `compare` holds (see `KvCompare`). */
  cas(key: string, compare: KvCompare, value: Uint8Array, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    this.command({ type: 'cas', key, compare, value }, done);
  }

  /** Deletes `key`. */
  delete(key: string, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    this.command({ type: 'delete', key }, done);
  }

  private command(command: KvCommand, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    // Checked here, before encoding: the codec asserts on invalid commands (a caller bug), and
    // the API passes user input. A put or cas also meets the key admission rule (`kv-key.ts`),
    // whichever client sent it; `apply` checks only the stored-key rule.
    const keyProblem = command.type === 'put' || command.type === 'cas' ? kvKeyProblem(command.key) : null;
    const invalid = keyProblem === null ? validateKvCommand(command) : { code: 'KV_INVALID_KEY', message: keyProblem };
    if (invalid !== null) {
      done(err(new RaftNodeError('REFUSED', `${invalid.code}: ${invalid.message}`, null, invalid.code)));
      return;
    }
    this.handle.propose(command, { idempotent: false }, done);
  }
}
