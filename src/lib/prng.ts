/**
 * A seeded, integer-only pseudo-random generator (xoshiro128**) with derivable child streams.
 *
 * Cores never call `Math.random`; they receive a `Prng`. The simulator gives each component its
 * own child stream (`fork('network')`, `fork('node-3')`), so adding draws to one component never
 * shifts the sequence another component sees: seeds stay comparable across code changes.
 * Same seed, same sequence, on any machine: only 32-bit integer arithmetic is used.
 */
import { assert } from './assert.js';

/** Mixes a 32-bit value (the murmur3 finaliser). */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** FNV-1a over the UTF-16 code units of `s`; stable across platforms. */
function hashLabel(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A deterministic random stream. Not for cryptography (use `node:crypto` in the platform). */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** The key this stream was derived from; children derive from it, not from the state. */
  private readonly key: number;

  /** `seed` is any safe integer (negative and above 2^32 are folded in). */
  constructor(seed: number) {
    assert(Number.isSafeInteger(seed), 'prng seed must be a safe integer');
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 0x100000000) >>> 0;
    this.key = mix32(lo ^ mix32(hi ^ 0x9e3779b9));
    // splitmix-style expansion of the key into four non-zero state words.
    let s = this.key;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      return mix32(s) || 1;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** A child stream named `label`; the same parent seed and label always give the same child. */
  fork(label: string | number): Prng {
    const h = typeof label === 'number' ? mix32(label >>> 0) : hashLabel(label);
    return new Prng(mix32(this.key ^ h) + 0x100000000 * (h & 0xffff));
  }

  /** The next uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** A uniform integer in `[min, maxExclusive)`; the range must be at most 2^32. */
  int(min: number, maxExclusive: number): number {
    assert(Number.isSafeInteger(min) && Number.isSafeInteger(maxExclusive), 'prng int bounds must be integers');
    const range = maxExclusive - min;
    assert(range > 0 && range <= 0x100000000, 'prng int range must be in (0, 2^32]');
    // Rejection sampling removes modulo bias.
    const limit = 0x100000000 - (0x100000000 % range);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return min + (x % range);
    }
  }

  /** A uniform float in [0, 1) with 32 bits of randomness (exact, platform-independent). */
  float(): number {
    return this.nextU32() / 0x100000000;
  }

  /** True with probability `p` (0 ≤ p ≤ 1). */
  chance(p: number): boolean {
    assert(p >= 0 && p <= 1, 'probability must be in [0, 1]');
    if (p === 0) return false;
    if (p === 1) return true;
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    assert(items.length > 0, 'cannot pick from an empty array');
    return items[this.int(0, items.length)] as T;
  }

  /** Shuffles `items` in place (Fisher-Yates) and returns it. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const tmp = items[i] as T;
      items[i] = items[j] as T;
      items[j] = tmp;
    }
    return items;
  }

  /** An exponentially distributed value with the given mean, drawn by inversion. */
  exponential(mean: number): number {
    assert(mean >= 0, 'mean must be non-negative');
    return -mean * Math.log(1 - this.float());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
