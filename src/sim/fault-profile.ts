/**
 * Per-run fault parameters, drawn from the seed ("swarm testing", after TigerBeetle's VOPR):
 * each run gets its own mix, so some seeds hammer one fault class and others another, and some
 * classes are switched off entirely. Ranges follow VOPR's packet simulator where it has one
 * (research/reliability.md section 2.2) and are documented in docs/simulator.md.
 *
 * Every value is drawn as an integer (µs, or hundredths of a percent for probabilities), so a
 * profile is identical on every machine.
 */
import type { Prng } from '../lib/prng.js';
import { PARTITION_SHAPES, shapeApplies, type PartitionShape } from './partition.js';
import type { NetworkParams } from './network.js';

/** A fault class the nemesis injects on a Poisson schedule. */
export interface FaultClass {
  /** Mean virtual time between injections, µs. */
  readonly meanIntervalUs: number;
  /** Mean duration of one injection (downtime, pause, partition, clog), µs. */
  readonly meanDurationUs: number;
}

/** One run's fault mix. A class that is `undefined` is switched off for the run. */
export interface FaultProfile {
  readonly network: NetworkParams;
  readonly partition: FaultClass | undefined;
  /** The partition shapes this run draws from (a non-empty subset of those that apply). */
  readonly shapes: readonly PartitionShape[];
  readonly crash: FaultClass | undefined;
  readonly pause: FaultClass | undefined;
  readonly clog: FaultClass | undefined;
  /**
   * Targeted disk I/O errors (mean duration unused): each injection arms "the next write, fsync
   * or read of node N fails" on any node, the leader included; the node then fail-stops.
   */
  readonly ioError: FaultClass | undefined;
  /**
   * Correlated power cuts: a majority, or every node, crashes in the same instant (losing what
   * was not synced) and comes back after the drawn duration.
   */
  readonly powerCut: FaultClass | undefined;
  /** Bit flips (mean duration unused); only on `corruptibleNodes` nodes. */
  readonly bitFlip: FaultClass | undefined;
  /** How many nodes (a minority) may receive bit flips. */
  readonly corruptibleNodes: number;
  /** Clock rates are drawn per node from [1 - d, 1 + d] with this d. */
  readonly clockDriftMax: number;
  readonly disk: {
    readonly writeLatencyMs: [number, number];
    readonly syncLatencyMs: [number, number];
    readonly tornWriteProbability: number;
    readonly keepUnsyncedProbability: number;
    /** Chance that one fsync stalls for 50-500 ms (see `SimDiskOptions.syncStallProbability`). */
    readonly syncStallProbability: number;
  };
}

const MS = 1000;
const SECOND = 1_000_000;

/** Chance that a run's disk is slow (`SLOW_DISK_SYNC_MS` fsyncs). */
const SLOW_DISK_PROBABILITY = 0.3;
/** Uniform fsync latency range of a slow disk, ms. */
export const SLOW_DISK_SYNC_MS: [number, number] = [20, 200];
/** The largest fsync latency of a disk that is not slow, ms. */
export const DISK_SYNC_MS_MAX = 50;

/** Probability that each fault class is switched on in a run. */
const CLASS_ENABLED_PROBABILITY = 0.8;

function maybeClass(prng: Prng, interval: [number, number], duration: [number, number]): FaultClass | undefined {
  const enabled = prng.chance(CLASS_ENABLED_PROBABILITY);
  const meanIntervalUs = prng.int(interval[0], interval[1] + 1);
  const meanDurationUs = prng.int(duration[0], duration[1] + 1);
  return enabled ? { meanIntervalUs, meanDurationUs } : undefined;
}

function fraction(prng: Prng, maxPercent: number): number {
  return prng.int(0, maxPercent * 100 + 1) / 10_000;
}

/** Draws a profile for a cluster of `nodeCount` nodes. Every draw happens in a fixed order. */
export function drawFaultProfile(
  prng: Prng,
  nodeCount: number,
  tolerates: { diskCorruption: boolean; ioErrors: boolean },
): FaultProfile {
  const network: NetworkParams = {
    latencyMinUs: prng.int(0, 30 * MS + 1),
    latencyMeanUs: prng.int(0, 70 * MS + 1),
    lossProbability: fraction(prng, 30),
    duplicateProbability: fraction(prng, 50),
  };
  const partition = maybeClass(prng, [500 * MS, 5 * SECOND], [200 * MS, 5 * SECOND]);
  const applicable = PARTITION_SHAPES.filter((s) => shapeApplies(s, nodeCount));
  const chosen = applicable.filter(() => prng.chance(0.6));
  const shapes = chosen.length > 0 ? chosen : applicable;
  const crash = maybeClass(prng, [100 * MS, 8 * SECOND], [100 * MS, 5 * SECOND]);
  const pause = maybeClass(prng, [500 * MS, 8 * SECOND], [50 * MS, 3 * SECOND]);
  const clog = maybeClass(prng, [200 * MS, 5 * SECOND], [50 * MS, 5 * SECOND]);
  const flip = maybeClass(prng, [1 * SECOND, 10 * SECOND], [0, 0]);
  const minority = Math.floor((nodeCount - 1) / 2);
  const corruptibleNodes = minority === 0 ? 0 : prng.int(1, minority + 1);
  const clockDriftMax = prng.int(0, 501) / 10_000;
  const writeMax = prng.int(1, 10);
  const syncMax = prng.int(1, DISK_SYNC_MS_MAX + 1);
  // Drawn last, so the classes above keep the values they had before these existed.
  const ioError = maybeClass(prng, [2 * SECOND, 20 * SECOND], [0, 0]);
  const powerCut = maybeClass(prng, [3 * SECOND, 20 * SECOND], [100 * MS, 3 * SECOND]);
  const syncStallProbability = fraction(prng, 10);
  // Some runs get a slow disk (fsync 20-200 ms, an HDD or a busy cloud volume) next to a network
  // that is often faster: acknowledgements then outrun fsyncs, as on a real LAN.
  const slowDisk = prng.chance(SLOW_DISK_PROBABILITY);
  return {
    network,
    partition: nodeCount >= 2 ? partition : undefined,
    shapes,
    crash,
    pause,
    clog: nodeCount >= 2 ? clog : undefined,
    ioError: tolerates.ioErrors ? ioError : undefined,
    powerCut,
    bitFlip: tolerates.diskCorruption && corruptibleNodes > 0 ? flip : undefined,
    corruptibleNodes: tolerates.diskCorruption ? corruptibleNodes : 0,
    clockDriftMax,
    disk: {
      writeLatencyMs: [0, writeMax],
      syncLatencyMs: slowDisk ? SLOW_DISK_SYNC_MS : [0.1, syncMax],
      tornWriteProbability: prng.int(0, 61) / 100,
      keepUnsyncedProbability: prng.int(0, 41) / 100,
      syncStallProbability,
    },
  };
}

/** A one-line description of the profile for the trace and summaries. */
export function describeProfile(p: FaultProfile): string {
  const cls = (name: string, c: FaultClass | undefined): string =>
    c === undefined
      ? `${name}=off`
      : `${name}=every~${(c.meanIntervalUs / SECOND).toFixed(2)}s/for~${(c.meanDurationUs / SECOND).toFixed(2)}s`;
  return [
    `latency=${p.network.latencyMinUs / MS}ms+exp(${p.network.latencyMeanUs / MS}ms)`,
    `loss=${(p.network.lossProbability * 100).toFixed(2)}%`,
    `dup=${(p.network.duplicateProbability * 100).toFixed(2)}%`,
    cls('partition', p.partition),
    `shapes=${p.shapes.join(',')}`,
    cls('crash', p.crash),
    cls('pause', p.pause),
    cls('clog', p.clog),
    p.ioError === undefined ? 'ioerror=off' : `ioerror=every~${(p.ioError.meanIntervalUs / SECOND).toFixed(2)}s`,
    cls('powercut', p.powerCut),
    p.bitFlip === undefined
      ? 'bitflip=off'
      : `bitflip=every~${(p.bitFlip.meanIntervalUs / SECOND).toFixed(2)}s/on-${p.corruptibleNodes}`,
    `drift=±${(p.clockDriftMax * 100).toFixed(2)}%`,
    `sync=${p.disk.syncLatencyMs[0]}-${p.disk.syncLatencyMs[1]}ms`,
    `torn=${p.disk.tornWriteProbability}`,
    `keep=${p.disk.keepUnsyncedProbability}`,
    `stall=${(p.disk.syncStallProbability * 100).toFixed(2)}%`,
  ].join(' ');
}
