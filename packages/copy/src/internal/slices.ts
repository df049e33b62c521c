/**
 * Blocking work runs on the main thread for at most this long before the event loop gets a turn (abort, progress,
 * the chunked copies of large files, worker messages).
 */
export const SLICE_MS = 8;

/** Resolves on the next turn of the event loop, after I/O callbacks. */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Calls `step` until it returns false or `stop` aborts, in slices of {@link SLICE_MS} between which the event loop
 * runs; `afterSlice` is called at the end of each slice (progress is reported per slice, not per step).
 */
export async function sliced(stop: AbortSignal, step: () => boolean, afterSlice?: () => void): Promise<void> {
  for (;;) {
    const end = performance.now() + SLICE_MS;
    let more = true;
    // The clock is read every 8 steps: a step is a few system calls.
    for (let n = 1; !stop.aborted; n++) {
      more = step();
      if (!more || ((n & 7) === 0 && performance.now() >= end)) break;
    }
    afterSlice?.();
    if (!more || stop.aborted) return;
    await nextTurn();
  }
}
