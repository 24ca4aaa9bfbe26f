import { expect } from 'vitest';
import { DbaasError, type ErrorCode } from '../../common/errors.js';

/** Asserts that `fn` throws a DbaasError with `code`, and returns it. */
export function expectCode(fn: () => unknown, code: ErrorCode): DbaasError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(DbaasError);
    expect((err as DbaasError).code).toBe(code);
    return err as DbaasError;
  }
  throw new Error(`expected ${code} to be thrown`);
}
