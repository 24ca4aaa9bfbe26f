/**
 * Duplicate-key refusals of the database, told apart from every other error:
 * the worker's inserts are idempotent by `_id`, so a duplicate means "already there".
 */
import { MongoBulkWriteError, MongoServerError } from 'mongodb';

/**
 * The indexes of the documents an insert refused as duplicates, when that is the
 * only thing wrong with it; undefined for any other error.
 */
export function duplicateIndexes(err: unknown): number[] | undefined {
  if (err instanceof MongoBulkWriteError) {
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    if (errors.length === 0 || errors.some((e) => e.code !== 11000)) return undefined;
    return errors.map((e) => e.index);
  }
  if (err instanceof MongoServerError && err.code === 11000) return [0];
  return undefined;
}

/** For `.catch()` on an idempotent insert: duplicates are fine, anything else is thrown again. */
export function ignoreDuplicates(err: unknown): void {
  if (duplicateIndexes(err) === undefined) throw err;
}
