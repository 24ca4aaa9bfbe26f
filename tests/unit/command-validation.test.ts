import { describe, expect, it } from 'vitest';
import { DbaasError } from '../../common/errors.js';
import { parseReadBody, parseWriteBody, validateReadCommand, validateWriteCommand } from '../../common/validation.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof DbaasError ? err.code : 'not a DbaasError';
  }
  return undefined;
}

describe('validateWriteCommand (what a worker accepts from the write queue)', () => {
  it('accepts every command the body parser produces, unchanged', () => {
    const bodies = [
      { table: 't', operation: 'insert', data: [{ a: 1 }, { _id: 'x', b: [1, 2] }] },
      { table: 't', operation: 'update', where: { a: { $gt: 1 } }, data: { $inc: { a: 1 }, $push: { b: { $each: [3] } } } },
      { table: 't', operation: 'upsert', where: { name: 'ana' }, data: { pw: 'x' } },
      { table: 't', operation: 'delete', where: {} },
      { table: 'users', insert: ['ana', 'pw'], column: ['username', 'password'] },
    ];
    for (const body of bodies) {
      const { command } = parseWriteBody(body);
      expect(validateWriteCommand(JSON.parse(JSON.stringify(command)))).toEqual(command);
    }
    expect(validateWriteCommand({ kind: 'clear' })).toEqual({ kind: 'clear' });
  });

  it.each([
    [null, 'DBAAS_REQ_INVALID'],
    [{ kind: 'explode', table: 't' }, 'DBAAS_REQ_BAD_OPERATION'],
    [{ kind: 'insert', table: 't', docs: { a: 1 } }, 'DBAAS_REQ_INVALID'],
    [{ kind: 'insert', table: 't', docs: [] }, 'DBAAS_REQ_INVALID'],
    [{ kind: 'insert', table: '$t', docs: [{}] }, 'DBAAS_REQ_BAD_TABLE'],
    [{ kind: 'insert', table: 't', docs: [{ $x: 1 }] }, 'DBAAS_DOC_INVALID'],
    [{ kind: 'update', table: 't', where: { $where: 'x' }, update: { $set: { a: 1 } } }, 'DBAAS_QUERY_OPERATOR_NOT_ALLOWED'],
    [{ kind: 'update', table: 't', where: {}, update: { $rename: { a: 'b' } } }, 'DBAAS_UPDATE_INVALID'],
    [{ kind: 'delete', table: 't' }, 'DBAAS_QUERY_INVALID'],
    [{ kind: 'clear', table: 't' }, 'DBAAS_REQ_UNKNOWN_FIELD'],
  ])('refuses %j with %s', (command, expected) => {
    expect(code(() => validateWriteCommand(command))).toBe(expected);
  });
});

describe('validateReadCommand', () => {
  it('accepts what the body parser produces and refuses the rest', () => {
    const command = parseReadBody({ table: 'r', where: { a: 1 }, columns: ['a'], sort: { a: -1 }, limit: 5, afterSeq: 3 });
    expect(validateReadCommand(JSON.parse(JSON.stringify(command)))).toEqual(command);
    expect(code(() => validateReadCommand({ table: 5 }))).toBe('DBAAS_REQ_BAD_TABLE');
    expect(code(() => validateReadCommand({ table: 't', where: { $expr: {} } }))).toBe('DBAAS_QUERY_OPERATOR_NOT_ALLOWED');
  });
});
