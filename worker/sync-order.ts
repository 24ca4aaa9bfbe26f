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
 * Where a replay of the oplog must start, given its newest entry, so that it
 * covers every entry that can be half-applied in the data.
 *
 * The master stores a whole batch of entries before it writes any of their data,
 * and starts a batch only once the previous batch's data is written; each entry
 * carries `first`, the seq its batch started at (absent: a batch of one). So only
 * the newest batch, `first` to `seq`, can be half-applied after a crash or in a
 * copy read while the master was writing. `atLeast` widens the replay to that
 * many newest entries when a caller wants a margin; replaying more is idempotent.
 */
export function replayFrom(newest: Pick<SyncEntry, 'seq' | 'first'>, atLeast = 1): number {
  return Math.max(1, Math.min(newest.first ?? newest.seq, newest.seq - atLeast + 1));
}

/**
 * The margin a snapshot replays at least (see {@link replayFrom}): the replay is
 * laid over the copy in memory, so a few more entries cost next to nothing.
 */
export const SNAPSHOT_REPLAY_ENTRIES = 8;

/**
 * The first seq a restarted master publishes again. Whether its newest entries reached
 * the broker before the crash is unknown, and not only the newest batch's: confirms are
 * awaited off the serial write path, so several batches may have been published and
 * not confirmed (their bytes still in this process or its socket when it died), and a
 * slave that missed one stops on the gap and copies everything again. Each entry the
 * master stores carries `acked`, the highest seq the broker had confirmed then: every
 * entry above it is published again (slaves skip what they have). Without it (entries
 * stored before it existed, or by a slave), the newest batch and at least
 * {@link SNAPSHOT_REPLAY_ENTRIES} entries, as before.
 */
export function republishFrom(newest: Pick<SyncEntry, 'seq' | 'first'> & { acked?: number }): number {
  const margin = replayFrom(newest, SNAPSHOT_REPLAY_ENTRIES);
  return newest.acked === undefined ? margin : Math.max(1, Math.min(margin, newest.acked + 1));
}

/** What a slave does with a run of entries taken from its queue, judged one after the other. */
export interface RunJudgement<E extends Pick<SyncEntry, 'seq' | 'term'>> {
  /** Entries to apply, in order (consecutive seqs). */
  apply: E[];
  /** Entries refused as coming from a deposed master. */
  stale: E[];
  /** The first entry that leaves a gap; nothing from it on is judged. */
  gap?: E;
  /** The position once `apply` is applied. */
  pos: SyncPosition;
}

/** Judges a run as {@link judgeEntry} would judge its entries one by one, each after the previous was applied. */
export function judgeRun<E extends Pick<SyncEntry, 'seq' | 'term'>>(pos: SyncPosition, entries: readonly E[]): RunJudgement<E> {
  const out: RunJudgement<E> = { apply: [], stale: [], pos };
  for (const entry of entries) {
    const verdict = judgeEntry(out.pos, entry);
    if (verdict === 'gap') {
      out.gap = entry;
      break;
    }
    if (verdict === 'stale-term') out.stale.push(entry);
    else if (verdict === 'apply') {
      out.apply.push(entry);
      out.pos = { ...out.pos, appliedSeq: entry.seq, maxTerm: entry.term };
    }
  }
  return out;
}
