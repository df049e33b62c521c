import type {
  CopyErrorCode,
  DedupErrorCode,
  FswErrorCode,
  HashErrorCode,
  RemoteErrorCode,
  TreeErrorCode,
  WalkErrorCode,
  WatchErrorCode,
} from './codes.js';

// A registry-wide symbol, so that two installed copies of this package recognise each other's errors where
// `instanceof` cannot. The value is the family name ('FswError', 'WalkError', ...).
const BRAND: unique symbol = Symbol.for('@fsw/errors') as never;

/** Options accepted by every error constructor. */
export interface FswErrorOptions {
  /** The file or directory the failure concerns. */
  readonly path?: string;
  /** The underlying error (an errno error, a protocol error...). */
  readonly cause?: unknown;
}

function brandOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const brand = (value as { [BRAND]?: unknown })[BRAND];
  return typeof brand === 'string' ? brand : undefined;
}

/**
 * The base of every error thrown by an `@fsw` package: a stable `code`, the `path` concerned and the original `cause`.
 * Test with `FswError.is(e)` (or a family's `is`) rather than `instanceof`, which fails across duplicate installs.
 */
export class FswError<C extends string = FswErrorCode> extends Error {
  /** A stable machine-readable code, e.g. `E_NOT_FOUND`. */
  readonly code: C;
  /** The path the failure concerns, when there is one. */
  readonly path?: string;
  declare readonly [BRAND]: string;

  constructor(code: C, message: string, options: FswErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.path !== undefined) this.path = options.path;
    const family = new.target.family;
    Object.defineProperty(this, 'name', {
      value: family,
      enumerable: false,
      configurable: true,
      writable: true,
    });
    Object.defineProperty(this, BRAND, { value: family, enumerable: false });
  }

  /** The family name this class brands its instances with. */
  static readonly family: string = 'FswError';

  /** True for any error thrown by an `@fsw` package, from any installed copy. */
  static is(error: unknown): error is FswError {
    return brandOf(error) !== undefined;
  }
}

/** Thrown by `@fsw/walk`. */
export class WalkError extends FswError<WalkErrorCode> {
  static override readonly family: string = 'WalkError';
  static override is(error: unknown): error is WalkError {
    return brandOf(error) === 'WalkError';
  }
}

/** Thrown by `@fsw/hash`. */
export class HashError extends FswError<HashErrorCode> {
  static override readonly family: string = 'HashError';
  static override is(error: unknown): error is HashError {
    return brandOf(error) === 'HashError';
  }
}

/** Thrown by `@fsw/copy`. */
export class CopyError extends FswError<CopyErrorCode> {
  static override readonly family: string = 'CopyError';
  static override is(error: unknown): error is CopyError {
    return brandOf(error) === 'CopyError';
  }
}

/** Thrown by `@fsw/dedup`. */
export class DedupError extends FswError<DedupErrorCode> {
  static override readonly family: string = 'DedupError';
  static override is(error: unknown): error is DedupError {
    return brandOf(error) === 'DedupError';
  }
}

/** Thrown by `@fsw/watch`. */
export class WatchError extends FswError<WatchErrorCode> {
  static override readonly family: string = 'WatchError';
  static override is(error: unknown): error is WatchError {
    return brandOf(error) === 'WatchError';
  }
}

/** Thrown by `@fsw/tree`. */
export class TreeError extends FswError<TreeErrorCode> {
  static override readonly family: string = 'TreeError';
  static override is(error: unknown): error is TreeError {
    return brandOf(error) === 'TreeError';
  }
}

/** Thrown by `@fsw/remote` and `@fsw/server`. */
export class RemoteError extends FswError<RemoteErrorCode> {
  static override readonly family: string = 'RemoteError';
  static override is(error: unknown): error is RemoteError {
    return brandOf(error) === 'RemoteError';
  }
}
