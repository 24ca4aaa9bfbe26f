/**
 * The rule by which a slave takes sync entries, as a pure function.
 *
 * Entries are applied strictly in seq order. Right after a snapshot taken at
 * master seq S, the slave has applied S-1 for certain (entry S may have been
 * half-applied when the snapshot began), and entries up to S may be missing from
 * its queue because they were published before the queue was bound; so the
 * first entry applied may jump up to S+1. An entry from an older term than one
 * already seen comes from a deposed master and is refused.
 */
import type { SyncEntry } from '../common/messages.js';

export interface SyncPosition {
  appliedSeq: number;
  /** Highest seq the next applied entry may jump to (the snapshot boundary + 1). */
  jumpUpTo: number;
  maxTerm: number;
}

export type SyncVerdict = 'apply' | 'skip' | 'gap' | 'stale-term';

export function judgeEntry(pos: SyncPosition, entry: Pick<SyncEntry, 'seq' | 'term'>): SyncVerdict {
  if (entry.term < pos.maxTerm) return 'stale-term';
  if (entry.seq <= pos.appliedSeq) return 'skip';
  if (entry.seq !== pos.appliedSeq + 1 && entry.seq > pos.jumpUpTo) return 'gap';
  return 'apply';
}

/** The position after a snapshot taken when the master's newest oplog entry was `snapshotSeq`. */
export function positionAfterSnapshot(snapshotSeq: number, term: number): SyncPosition {
  return { appliedSeq: Math.max(0, snapshotSeq - 1), jumpUpTo: snapshotSeq + 1, maxTerm: term };
}
