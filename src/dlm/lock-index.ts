/**
 * The locks of one resource by reference (`LockRef`: node and lock id), for the resource engine.
 * Most resources hold a few locks, so while they do the index is a short array scanned on each
 * lookup (no key to build, no map to allocate); past `LOCK_INDEX_SMALL` it becomes a map by lock
 * id (a lock id is unique per node incarnation, so different nodes rarely share one: those share
 * a bucket). Pure.
 */
import type { LockRef } from './lock-types.js';

/** Locks kept in the scanned array before the index switches to a map. */
export const LOCK_INDEX_SMALL = 8;

/**
 * See the file comment. A base class, so a resource holds its index in its own fields (one object
 * less per resource: the engine keeps a million of them).
 */
export class LockIndex<T extends { readonly ref: LockRef }> {
  /** The locks while few: none, one (the common case: no array), or an array. */
  private indexList: T | T[] | null = null;
  private indexMap: Map<number, T | T[]> | null = null;
  private indexCount = 0;

  protected get indexSize(): number {
    return this.indexCount;
  }

  protected indexGet(ref: LockRef): T | undefined {
    if (this.indexMap === null) {
      const l = this.indexList;
      if (l === null) return undefined;
      if (!Array.isArray(l)) return l.ref.lkid === ref.lkid && l.ref.node === ref.node ? l : undefined;
      for (const x of l) if (x.ref.lkid === ref.lkid && x.ref.node === ref.node) return x;
      return undefined;
    }
    const b = this.indexMap.get(ref.lkid);
    if (b === undefined) return undefined;
    if (!Array.isArray(b)) return b.ref.node === ref.node ? b : undefined;
    return b.find((x) => x.ref.node === ref.node);
  }

  /** Adds `x`; its ref must not be in the index. */
  protected indexAdd(x: T): void {
    this.indexCount++;
    if (this.indexMap === null) {
      const l = this.indexList;
      if (l === null) this.indexList = x;
      else if (!Array.isArray(l)) this.indexList = [l, x];
      else {
        l.push(x);
        if (l.length <= LOCK_INDEX_SMALL) return;
        this.indexMap = new Map();
        this.indexList = null;
        for (const y of l) this.indexPut(y);
      }
      return;
    }
    this.indexPut(x);
  }

  private indexPut(x: T): void {
    const m = this.indexMap as Map<number, T | T[]>;
    const b = m.get(x.ref.lkid);
    if (b === undefined) m.set(x.ref.lkid, x);
    else if (Array.isArray(b)) b.push(x);
    else m.set(x.ref.lkid, [b, x]);
  }

  /** Removes `x`; false when it was not there. */
  protected indexDelete(x: T): boolean {
    if (this.indexMap === null) {
      const l = this.indexList;
      if (l === x) this.indexList = null;
      else if (Array.isArray(l)) {
        const i = l.indexOf(x);
        if (i < 0) return false;
        l.splice(i, 1);
      } else return false;
      this.indexCount--;
      return true;
    }
    const b = this.indexMap.get(x.ref.lkid);
    if (b === undefined) return false;
    if (!Array.isArray(b)) {
      if (b !== x) return false;
      this.indexMap.delete(x.ref.lkid);
    } else {
      const i = b.indexOf(x);
      if (i < 0) return false;
      b.splice(i, 1);
      if (b.length === 1) this.indexMap.set(x.ref.lkid, b[0] as T);
    }
    this.indexCount--;
    return true;
  }

  /** Every lock, in no particular order (a copy). */
  protected indexValues(): T[] {
    if (this.indexMap === null)
      return this.indexList === null ? [] : Array.isArray(this.indexList) ? [...this.indexList] : [this.indexList];
    const out: T[] = [];
    for (const b of this.indexMap.values())
      if (Array.isArray(b)) out.push(...b);
      else out.push(b);
    return out;
  }
}
