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

/**
 * Whether a write was refused for a duplicate key of any unique index. FerretDB
 * 1.24 on PostgreSQL answers a replace or update that breaks a unique index with
 * code 1 and PostgreSQL's SQLSTATE 23505 in the message, an insert with 11000.
 */
export function isDuplicateKey(err: unknown): boolean {
  if (duplicateIndexes(err) !== undefined) return true;
  return err instanceof MongoServerError && /SQLSTATE 23505|duplicate key/i.test(err.message);
}
