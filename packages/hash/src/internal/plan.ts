import { HashError } from '@fsw/errors';
import type { HashRange } from '../types.js';

/** A run of bytes to hash. */
export interface Segment {
  readonly offset: number;
  readonly length: number;
}

function count(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new HashError(
      'E_INVALID_ARGUMENT',
      `range.${what} must be a non-negative integer, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Checks a range up front (before any file is opened).
 * @throws {HashError} `E_INVALID_ARGUMENT` for negative, fractional or missing numbers.
 */
export function validateRange(range: HashRange | undefined): void {
  if (range === undefined) return;
  if (typeof range !== 'object' || range === null) {
    throw new HashError(
      'E_INVALID_ARGUMENT',
      'range must be { offset, length }, { head }, { tail } or { head, tail }',
    );
  }
  if ('offset' in range || 'length' in range) {
    const r = range as { offset?: unknown; length?: unknown };
    count(r.offset, 'offset');
    count(r.length, 'length');
    return;
  }
  const r = range as { head?: unknown; tail?: unknown };
  if (r.head === undefined && r.tail === undefined) {
    throw new HashError(
      'E_INVALID_ARGUMENT',
      'range must be { offset, length }, { head }, { tail } or { head, tail }',
    );
  }
  if (r.head !== undefined) count(r.head, 'head');
  if (r.tail !== undefined) count(r.tail, 'tail');
}

/** The bytes of a file of `size` bytes that `range` selects, in hashing order. */
export function planSegments(size: number, range: HashRange | undefined): Segment[] {
  if (range === undefined) return [{ offset: 0, length: size }];
  if ('offset' in range) {
    const offset = Math.min(range.offset, size);
    return [{ offset, length: Math.min(range.length, size - offset) }];
  }
  const head = 'head' in range ? range.head : 0;
  const tail = range.tail ?? 0;
  // Head and tail overlap or touch: the whole file, so that two files with equal bytes always get equal digests.
  if (head + tail >= size) return [{ offset: 0, length: size }];
  const out: Segment[] = [];
  if (head > 0) out.push({ offset: 0, length: head });
  if (tail > 0) out.push({ offset: size - tail, length: tail });
  return out;
}
