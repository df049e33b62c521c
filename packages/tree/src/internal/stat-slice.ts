import { lstatSync } from 'node:fs';

// lstat of many listed paths as a loop of blocking calls, answered as flat numbers so that a slice crosses threads
// as one transferable buffer (stat-worker.ts) instead of one Stats object per path.

/** Numbers per path in a slice's facts: status, st_mode, size, mtimeMs, ino. */
export const STAT_FIELDS = 5;

/** `status` of a path: stat-ed, gone (ENOENT/ENOTDIR: not part of this snapshot), or failed (see the failures). */
export const STAT_OK = 0;
export const STAT_GONE = 1;
export const STAT_FAILED = 2;

/** An lstat that failed other than by the path being gone. */
export interface StatFailure {
  readonly index: number;
  readonly code: string;
  readonly message: string;
}

/** lstat-s `paths` into `facts` ({@link STAT_FIELDS} numbers per path); failures other than "gone" are returned. */
export function statSlice(paths: readonly string[], facts: Float64Array): StatFailure[] {
  const failures: StatFailure[] = [];
  for (let i = 0; i < paths.length; i++) {
    const at = i * STAT_FIELDS;
    try {
      const st = lstatSync(paths[i]!, { throwIfNoEntry: false });
      if (st === undefined) {
        facts[at] = STAT_GONE;
        continue;
      }
      facts[at] = STAT_OK;
      facts[at + 1] = st.mode;
      facts[at + 2] = st.size;
      facts[at + 3] = st.mtimeMs;
      facts[at + 4] = st.ino;
    } catch (error) {
      const code = (error as { code?: string }).code ?? 'EIO';
      if (code === 'ENOTDIR' || code === 'ENOENT') {
        facts[at] = STAT_GONE;
        continue;
      }
      facts[at] = STAT_FAILED;
      failures.push({ index: i, code, message: String((error as Error).message ?? error) });
    }
  }
  return failures;
}
