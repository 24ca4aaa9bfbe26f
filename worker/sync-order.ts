/**
 * The rule by which a slave takes sync entries, as a pure function.
 *
 * Entries are applied strictly in seq order. After a snapshot taken at master
 * seq S (and the replay of the oplog's tail up to S, see SlaveRole.snapshot),
 * the slave has applied S: entries up to S that are still in its queue are
 * skipped, and S+1 is certain to be there, because the master published it after
 * it stored it, which was after the snapshot read S, which was after the queue
 * was bound. `jumpUpTo` allows a first entry beyond appliedSeq+1 where a caller
 * knows entries may be missing for a good reason; the snapshot path no longer
 * needs it. An entry from an older term than one already seen comes from a
 * deposed master and is refused.
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
  return { appliedSeq: snapshotSeq, jumpUpTo: snapshotSeq, maxTerm: term };
}

/**
 * How many of the newest oplog entries a snapshot replays. The master applies one
 * write at a time, so at most the newest entry can have been half-applied when
 * the copy read the data; replaying a few more costs little and is idempotent.
 */
export const SNAPSHOT_REPLAY_ENTRIES = 8;
