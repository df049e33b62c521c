import { lstatSync, type Stats } from 'node:fs';

// Calls between two turns of the event loop (a few milliseconds of system calls).
const SLICE = 2000;

/**
 * `lstat` of many paths: synchronous calls in slices, yielding to the event loop between slices. Through the thread
 * pool each call would cost several times the system call itself. A path that cannot be read gives its error.
 */
export async function lstatAll(paths: readonly string[]): Promise<(Stats | Error)[]> {
  const out: (Stats | Error)[] = new Array(paths.length);
  for (let i = 0; i < paths.length; i++) {
    try {
      out[i] = lstatSync(paths[i]!);
    } catch (error) {
      out[i] = error as Error;
    }
    if ((i + 1) % SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return out;
}
