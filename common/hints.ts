/**
 * Hints: notes a worker adds to an answer that is right but may surprise, carried
 * as an AMQP message header on the reply and passed on as the HTTP header of the
 * same name (docs/API.md).
 */

/** The header, on the worker's reply and on the HTTP answer. */
export const HINT_HEADER = 'x-dbaas-hint';

/** A read found nothing because the table does not exist (the answer stays `[]` or `{count: 0}`, as in MongoDB). */
export const TABLE_NOT_FOUND_HINT = 'table-not-found';
