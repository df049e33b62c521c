import { WatchError } from '@fsw/errors';
import type { FileEventType, FilterOptions } from '../types.js';

/** {@link FilterOptions} with every default applied. */
export interface ResolvedFilter {
  readonly ignore: readonly string[];
  readonly ignoreFiles: readonly string[];
  readonly recursive: boolean;
  readonly types: ReadonlySet<FileEventType>;
}

const ALL_TYPES: readonly FileEventType[] = ['created', 'modified', 'deleted', 'renamed'];

/**
 * Applies the defaults of the filtering options once, at the boundary.
 * @throws WatchError `E_INVALID_ARGUMENT` for an unknown event type or a non-string pattern
 */
export function resolveFilter(options: FilterOptions): ResolvedFilter {
  const ignore = typeof options.ignore === 'string' ? [options.ignore] : [...(options.ignore ?? [])];
  for (const pattern of [...ignore, ...(options.ignoreFiles ?? [])]) {
    if (typeof pattern !== 'string') {
      throw new WatchError(
        'E_INVALID_ARGUMENT',
        `invalid ignore pattern ${String(pattern)}: expected a string`,
      );
    }
  }
  const types = new Set(options.types ?? ALL_TYPES);
  for (const type of types) {
    if (!ALL_TYPES.includes(type)) {
      throw new WatchError(
        'E_INVALID_ARGUMENT',
        `invalid event type '${String(type)}': expected one of ${ALL_TYPES.join(', ')}`,
      );
    }
  }
  return {
    ignore,
    ignoreFiles: [...(options.ignoreFiles ?? [])],
    recursive: options.recursive ?? true,
    types,
  };
}
