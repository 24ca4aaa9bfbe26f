/**
 * What a worker answers when its database fails a read: a client's read (on a
 * slave, or on one replica through its control queue), or the reads a master
 * builds a write from (an update's matches, a unique index's keys). The database
 * refusing the query is the client's 400; the database out of reach (FerretDB not
 * reaching its PostgreSQL, a connection lost mid-answer) is a 503 to retry with the
 * same requestId, never a final 4xx nor a 500 (found by fault testing, session 6:
 * under a PostgreSQL crash valid writes were answered 400 DBAAS_QUERY_INVALID).
 */
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { asDbaasError, DbaasError } from '../common/errors.js';
import { databaseSaid, refusedByStorage } from './void-batch.js';

/** MongoDB's (and FerretDB's) error code for a query stopped by its maxTimeMS. */
const MAX_TIME_MS_EXPIRED = 50;

/** What a read the database stopped at its time bound answers: FerretDB's `maxTimeMS` here, PostgreSQL's `statement_timeout` (Store's reads below FerretDB). */
export function readStopped(): DbaasError {
  return new DbaasError('DBAAS_RPC_TIMEOUT', 'the read ran longer than DBAAS_REQUEST_TIMEOUT_MS on the database and was stopped');
}

/** The answer to a client's read that failed. */
export function readError(err: unknown): DbaasError {
  if (err instanceof DbaasError) return err;
  if (err instanceof MongoServerError && err.code === MAX_TIME_MS_EXPIRED) return readStopped();
  return queryError(err, 'query') ?? asDbaasError(err);
}

/** A database's failure to answer a read: 400 when it refused the `what`, 503 when it could not answer now; undefined for any other error. */
export function queryError(err: unknown, what: 'query' | 'filter'): DbaasError | undefined {
  if (err instanceof MongoServerError && refusedByStorage(err)) return new DbaasError('DBAAS_QUERY_INVALID', `the database refused the ${what}: ${databaseSaid(err)}`);
  if (err instanceof MongoServerError || err instanceof MongoNetworkError || err instanceof MongoServerSelectionError) {
    return new DbaasError('DBAAS_WORKER_DB_UNAVAILABLE', `this worker's database could not answer now; retry (with the same requestId for a write): ${databaseSaid(err)}`);
  }
  return undefined;
}
